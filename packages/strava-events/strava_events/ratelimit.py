"""Token buckets per client address and overall: beyond them a request is answered 429.

The receiver never queues a request it cannot afford: a flood from one address (or from
everyone) gets a fast 429 while Strava's own bursts, which are far smaller than the
defaults, pass. The per-client table is bounded (the least recently seen address is
forgotten first), so a flood of addresses cannot grow it without end.
"""

from __future__ import annotations

import collections
import dataclasses
import time

MAX_CLIENTS = 10_000


@dataclasses.dataclass
class Bucket:
    """``rate`` tokens a second up to ``burst``; each request takes one."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Whether a request may pass now."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """The overall bucket and one bucket per client address (all in the event loop)."""

    def __init__(
        self, client_rate: float, client_burst: int, total_rate: float, total_burst: int
    ) -> None:
        now = time.monotonic()
        self._client_rate = client_rate
        self._client_burst = client_burst
        self._total = Bucket(total_rate, total_burst, float(total_burst), now)
        self._clients: collections.OrderedDict[str, Bucket] = collections.OrderedDict()

    def allow(self, client: str) -> bool:
        """Whether this client's request passes; takes a token from both buckets if so."""
        now = time.monotonic()
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = Bucket(self._client_rate, self._client_burst, float(self._client_burst), now)
            self._clients[client] = bucket
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        if not bucket.take(now):
            return False
        return self._total.take(now)
