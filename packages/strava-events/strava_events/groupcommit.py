"""Group commit: every event waiting is written in one transaction, each answered after it.

Committing each event alone costs one fsync each, one after the other under the store's
lock: a burst of 500 deliveries then waits 500 fsyncs, and the last is answered seconds
late (Strava gives up after 2 s). Here one writer takes every event that arrived while the
previous group was being written, writes them in one transaction (one commit, one fsync),
and only then resolves each event's future: an event is still answered only once it is on
disk, but a burst costs a few fsyncs instead of one per event. Nothing waits on purpose: a
lone event is written at once, as a group of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing as t

if t.TYPE_CHECKING:
    import concurrent.futures

    from strava_events.queue import EventStore, StoredEvent

#: Events per transaction at most (a bound on one statement's size, not a wait).
MAX_GROUP = 1000


class GroupWriter:
    """The store's one writer of new events; :meth:`write` awaits an event's outcome."""

    def __init__(
        self,
        store: EventStore,
        executor: concurrent.futures.Executor,
        max_pending_per_athlete: int,
    ) -> None:
        self._store = store
        self._executor = executor
        self._max_pending = max_pending_per_athlete
        self._waiting: list[tuple[StoredEvent, asyncio.Future[str | BaseException]]] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Transactions written so far (``/tap/status`` shows it: far fewer than events
        #: in a burst is group commit at work).
        self.commits = 0

    def start(self) -> None:
        """Start the writer task (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the writer; events still waiting get an error (the caller spools them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _stored, future in self._waiting:
            if not future.done():
                future.set_result(RuntimeError("the receiver is stopping"))
        self._waiting.clear()

    def submit(self, stored: StoredEvent) -> asyncio.Future[str | BaseException]:
        """Queue one event; its future becomes its outcome, or the exception of its group.

        An exception is a result, not raised into the future: a caller that stopped
        waiting (its deadline passed, it spooled the event) leaves nothing unretrieved.
        """
        future: asyncio.Future[str | BaseException] = asyncio.get_running_loop().create_future()
        self._waiting.append((stored, future))
        self._arrived.set()
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:
                group = self._waiting[:MAX_GROUP]
                del self._waiting[:MAX_GROUP]
                events = [stored for stored, _future in group]
                results: list[str | BaseException]
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, self._store.write, events, self._max_pending
                    )
                    results = list(outcomes)
                    self.commits += 1
                except Exception as exc:  # the store failed: every event of the group spools
                    results = [exc] * len(group)
                for (_stored, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
