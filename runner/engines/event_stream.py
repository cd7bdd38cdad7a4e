"""What every engine connection shares between its socket and its consumer: the queue of events
on their way out, the stream `events()` returns over it, and the waiter futures of its requests.

One home so the three engines keep the same end-of-stream and cancellation rules
(wagate.ports.EngineConnection). How a connection uses it:

    self._events = EventQueue()
    def events(self) -> AsyncIterator[EngineEvent]:
        return self._events.stream()          # or .stream(on_consumed=...) to ack what was taken
    self._events.put(event)                   # from the socket's reader
    close():  self._events.begin_close()      # first: a reader with nothing queued stops now
              ...                             # stop the socket
              self._events.end()              # last: every reader stops after what is queued
    future: asyncio.Future[X] = new_waiter()  # a reply that may arrive after its waiter gave up
    resolve_waiter(self._ready)               # connect() returns: QR, Connected or a close
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from wagate.domain.events import EngineEvent

Consumed = Callable[[int], Awaitable[None]]


class EventQueue:
    """A connection's events in order, each with the sequence number the consumer acknowledges
    by asking for the next event (0: nothing to acknowledge)."""

    __slots__ = ("_items", "closing")

    def __init__(self) -> None:
        self._items: asyncio.Queue[tuple[EngineEvent, int] | None] = asyncio.Queue()
        self.closing = False

    def put(self, event: EngineEvent, seq: int = 0) -> None:
        self._items.put_nowait((event, seq))

    def empty(self) -> bool:
        return self._items.empty()

    def begin_close(self) -> None:
        """The connection is closing: a reader that finds nothing queued stops at once."""
        self.closing = True

    def end(self) -> None:
        """No event follows: every reader, now and later, stops after the queued ones."""
        self.closing = True
        self._items.put_nowait(None)

    def stream(self, on_consumed: Consumed | None = None) -> EventStream:
        return EventStream(self, on_consumed)

    async def take(self) -> tuple[EngineEvent, int] | None:
        """The next event and its sequence number; None once the stream is over."""
        if self.closing and self._items.empty():
            return None
        item = await self._items.get()
        if item is None:
            self._items.put_nowait(None)  # the end stays visible to any later reader
        return item


class EventStream:
    """What `events()` returns: an async iterator object rather than an async generator, so a
    consumer's timeout or cancellation while it waits does not end the stream (a generator
    would be finished for good by the CancelledError passing through it)."""

    __slots__ = ("_handed", "_on_consumed", "_queue")

    def __init__(self, queue: EventQueue, on_consumed: Consumed | None = None) -> None:
        self._queue = queue
        self._on_consumed = on_consumed
        self._handed = 0  # sequence number completed by the event last handed out

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> EngineEvent:
        if self._handed:
            # The consumer asked for the next event: it has handled the last one.
            seq, self._handed = self._handed, 0
            if self._on_consumed is not None:
                await self._on_consumed(seq)
        item = await self._queue.take()
        if item is None:
            raise StopAsyncIteration
        event, seq = item
        self._handed = seq
        return event


def new_waiter() -> asyncio.Future[Any]:
    """A future for a reply; if it fails after its waiter timed out, asyncio does not log the
    exception as never retrieved."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(_mark_exception_seen)
    return future


def resolve_waiter(waiter: asyncio.Future[None] | None) -> None:
    """Wake whoever waits on `waiter` (connect's outcome), if it is still waiting."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _mark_exception_seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
