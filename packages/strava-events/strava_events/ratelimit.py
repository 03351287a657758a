"""Budgets spent on what fails, never on who sends.

Strava delivers from a few addresses it does not document, in bursts: a budget per sender
would refuse Strava itself (500 events at once from one address must all pass), and an
allow-list by address is impossible. So nothing valid is ever counted. What is counted is
what fails: a callback request to a wrong path, a body that is no event, a wrong verify
token, each charges its client address (:class:`FailureBudget`); a client whose budget is
spent is answered 429 before its request is read, until the budget refills. The tap's
listener counts the requests without its bearer token in one bucket of their own, checked
after the token, so strangers never spend what the tap's own calls need.

The per-client table is bounded (the least recently charged address is forgotten first),
so a flood of addresses cannot grow it without end. Everything runs in the event loop.
"""

from __future__ import annotations

import collections
import dataclasses
import time

MAX_CLIENTS = 10_000


@dataclasses.dataclass
class Bucket:
    """``rate`` tokens a second up to ``burst``; each charge takes one."""

    rate: float
    burst: int
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: int) -> Bucket:
        """A bucket with its whole burst available."""
        return cls(rate, burst, float(burst), time.monotonic())

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> bool:
        """Whether a token was there (and is now taken)."""
        self._refill(time.monotonic())
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def empty(self) -> bool:
        """Whether not even one token is left (nothing is taken)."""
        self._refill(time.monotonic())
        return self.tokens < 1


class FailureBudget:
    """One bucket per client address, charged only by that client's failed requests."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._clients: collections.OrderedDict[str, Bucket] = collections.OrderedDict()

    def spent(self, client: str) -> bool:
        """Whether this client failed so often lately that it is refused for now."""
        bucket = self._clients.get(client)
        return bucket is not None and bucket.empty()

    def charge(self, client: str) -> None:
        """Count one failed request of this client."""
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = Bucket.full(self._rate, self._burst)
            self._clients[client] = bucket
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        bucket.take()
