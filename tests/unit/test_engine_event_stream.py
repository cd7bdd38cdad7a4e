"""runner.engines.event_stream: the end-of-stream, cancellation and acknowledgement rules every
engine connection's `events()` follows (wagate.ports.EngineConnection)."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from runner.engines.event_stream import EventQueue, new_waiter, resolve_waiter
from tests.simulator.harness import run
from wagate.domain.events import Connected, Disconnected, MessageAck


def on_a_fresh_loop(body: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(body)
    def test() -> None:
        run(body, timeout=5)

    return test


def _ack(n: int) -> MessageAck:
    return MessageAck(f"id{n}", datetime(2026, 1, 1, tzinfo=UTC))


@on_a_fresh_loop
async def test_events_come_out_in_order_and_the_stream_ends_after_the_queued_ones() -> None:
    queue = EventQueue()
    queue.put(Connected("1@s.whatsapp.net"))
    queue.put(_ack(1))
    queue.end()
    assert [e async for e in queue.stream()] == [Connected("1@s.whatsapp.net"), _ack(1)]
    assert [e async for e in queue.stream()] == []  # the end stays visible to a later reader


@on_a_fresh_loop
async def test_a_consumer_timing_out_while_it_waits_does_not_end_the_stream() -> None:
    queue = EventQueue()
    stream = queue.stream()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await anext(stream)
    queue.put(_ack(2))
    assert await anext(stream) == _ack(2)


@on_a_fresh_loop
async def test_a_closing_connection_stops_a_reader_with_nothing_queued_without_waiting() -> None:
    queue = EventQueue()
    queue.put(_ack(3))
    queue.begin_close()
    stream = queue.stream()
    assert await anext(stream) == _ack(3)
    async with asyncio.timeout(1):
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


@on_a_fresh_loop
async def test_an_event_is_acknowledged_when_the_consumer_asks_for_the_next_one() -> None:
    queue = EventQueue()
    consumed: list[int] = []

    async def on_consumed(seq: int) -> None:
        consumed.append(seq)

    queue.put(_ack(4), seq=7)
    queue.put(Disconnected(428, "closed"))  # seq 0: nothing to acknowledge
    queue.put(_ack(5), seq=9)
    queue.end()
    stream = queue.stream(on_consumed=on_consumed)
    assert await anext(stream) == _ack(4)
    assert consumed == []  # taken, not yet handled
    assert await anext(stream) == Disconnected(428, "closed")
    assert consumed == [7]
    assert await anext(stream) == _ack(5)
    assert consumed == [7]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert consumed == [7, 9]


@on_a_fresh_loop
async def test_a_waiter_failing_after_nobody_waits_is_not_reported_as_never_retrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        waiter = new_waiter()
        waiter.set_exception(RuntimeError("late"))
        del waiter
        await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert reported == []


@on_a_fresh_loop
async def test_resolve_waiter_wakes_a_waiter_once_and_ignores_none() -> None:
    resolve_waiter(None)
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    resolve_waiter(waiter)
    resolve_waiter(waiter)  # a second outcome (QR, then Connected) is not an error
    assert waiter.done() and waiter.result() is None
