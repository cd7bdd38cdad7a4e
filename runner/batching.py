"""One micro-batcher: calls that arrive within a few milliseconds share one round trip to the
store (a batch write, a transaction, a query), and each caller still awaits its own answer.

Hand-written: it is a window, one flusher task and a future per call over asyncio, and no
library batches arbitrary calls this way. The api's threaded group commit
(wagate/services/commits.py) is a different shape and stays apart (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Answers one window's items in order: a result, or the exception that item alone failed with.
# Raising fails every item of the window.
Flush = Callable[[list[Item]], Awaitable[Sequence[Result | Exception]]]
# Whether `item` may join the batch `group` being formed; an item that may not waits for the
# next batch (e.g. a second claim of the same message).
Fits = Callable[[list[Item], Item], bool]


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class MicroBatcher(Generic[Item, Result]):
    """The first call opens a window of `window_s`; then the calls queued so far are flushed in
    batches of at most `limit` until none is left. `skip_abandoned`: a call whose caller has
    stopped waiting (a timeout) is dropped before its flush, not run."""

    def __init__(
        self,
        flush: Flush[Item, Result],
        *,
        window_s: float,
        limit: int | None = None,
        fits: Fits[Item] | None = None,
        skip_abandoned: bool = False,
    ) -> None:
        self._flush = flush
        self._window_s = window_s
        self._limit = limit
        self._fits = fits
        self._skip_abandoned = skip_abandoned
        self._waiting: list[_Waiting[Item, Result]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """`item`'s answer, once the batch that carried it has been flushed."""
        return await self._enqueue(item)

    def submit_unawaited(self, item: Item) -> None:
        """Flush `item` with a batch, waiting for nothing: its failure is dropped."""
        self._enqueue(item).add_done_callback(_ignore_outcome)

    def _enqueue(self, item: Item) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        return future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._waiting:
            batch = self._take()
            if batch:
                await self._answer(batch)

    def _take(self) -> list[_Waiting[Item, Result]]:
        """The next batch, in arrival order; what does not fit stays queued, in order."""
        batch: list[_Waiting[Item, Result]] = []
        left: list[_Waiting[Item, Result]] = []
        items: list[Item] = []
        for waiting in self._waiting:
            if self._skip_abandoned and waiting.future.done():
                continue
            full = self._limit is not None and len(batch) >= self._limit
            if full or (self._fits is not None and not self._fits(items, waiting.item)):
                left.append(waiting)
            else:
                batch.append(waiting)
                items.append(waiting.item)
        self._waiting = left
        return batch

    async def _answer(self, batch: list[_Waiting[Item, Result]]) -> None:
        try:
            results = await self._flush([waiting.item for waiting in batch])
        except Exception as e:  # the whole flush failed: every call in it did
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(e)
            return
        for waiting, result in zip(batch, results, strict=True):
            if waiting.future.done():
                continue
            if isinstance(result, Exception):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved
