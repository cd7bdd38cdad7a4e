"""The micro-batcher: calls within one window share one flush and each gets its own answer; a
failed flush fails exactly the calls it carried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from runner.batching import MicroBatcher


class Recorder:
    """A flush that records its batches and answers each item doubled; `hold` keeps a flush
    waiting, `fail_with` makes the next one raise."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold: asyncio.Event | None = None
        self.fail_with: Exception | None = None
        self.flushing = asyncio.Event()

    async def flush(self, items: list[int]) -> Sequence[int | Exception]:
        self.batches.append(items)
        self.flushing.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        return [ValueError(f"odd {i}") if i < 0 else 2 * i for i in items]


def test_calls_within_one_window_share_one_flush_and_each_gets_its_own_answer() -> None:
    recorder = Recorder()

    async def scenario() -> list[int]:
        batcher = MicroBatcher(recorder.flush, window_s=0.01)
        return list(await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3))))

    assert asyncio.run(scenario()) == [2, 4, 6]
    assert recorder.batches == [[1, 2, 3]]


def test_an_item_s_own_exception_fails_only_that_call() -> None:
    recorder = Recorder()

    async def scenario() -> list[int | BaseException]:
        batcher = MicroBatcher(recorder.flush, window_s=0.01)
        calls = (batcher.submit(i) for i in (1, -1, 3))
        return list(await asyncio.gather(*calls, return_exceptions=True))

    first, failed, third = asyncio.run(scenario())
    assert (first, third) == (2, 6) and isinstance(failed, ValueError)
    assert recorder.batches == [[1, -1, 3]]


def test_a_failed_flush_fails_exactly_that_window_s_calls() -> None:
    async def scenario() -> None:
        recorder = Recorder()  # its Event belongs to this loop
        batcher = MicroBatcher(recorder.flush, window_s=0.01)
        recorder.hold = asyncio.Event()
        recorder.fail_with = ConnectionError("store down")
        window = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await recorder.flushing.wait()
        later = asyncio.ensure_future(batcher.submit(5))  # queued while the flush runs
        await asyncio.sleep(0.001)
        recorder.hold.set()
        for call in window:
            with pytest.raises(ConnectionError):
                await call
        assert await later == 10
        assert recorder.batches == [[1, 2], [5]]

    asyncio.run(scenario())


def test_what_does_not_fit_waits_for_the_next_batch_in_arrival_order() -> None:
    recorder = Recorder()

    def fits(group: list[int], item: int) -> bool:
        return item not in group  # the same item twice never shares a flush

    async def scenario() -> list[int]:
        batcher = MicroBatcher(recorder.flush, window_s=0.01, limit=3, fits=fits)
        calls = (batcher.submit(i) for i in (1, 1, 2, 3, 4, 2))
        return list(await asyncio.gather(*calls))

    assert asyncio.run(scenario()) == [2, 2, 4, 6, 8, 4]
    assert recorder.batches == [[1, 2, 3], [1, 4, 2]]


def test_a_call_whose_caller_gave_up_is_skipped_only_if_asked() -> None:
    async def scenario(skip_abandoned: bool) -> list[list[int]]:
        recorder = Recorder()
        batcher = MicroBatcher(recorder.flush, window_s=0.01, skip_abandoned=skip_abandoned)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(1), 0.001)  # gives up before the window ends
        assert await batcher.submit(2) == 4
        return recorder.batches

    assert asyncio.run(scenario(skip_abandoned=True)) == [[2]]
    assert asyncio.run(scenario(skip_abandoned=False)) == [[1, 2]]


def test_an_unawaited_call_rides_with_the_next_flush_and_its_failure_is_dropped() -> None:
    recorder = Recorder()

    async def scenario() -> int:
        batcher = MicroBatcher(recorder.flush, window_s=0.01)
        batcher.submit_unawaited(-1)  # fails on its own: nobody hears of it
        return await batcher.submit(2)

    assert asyncio.run(scenario()) == 4
    assert recorder.batches == [[-1, 2]]
