"""A slow store is not a down one, on the real Firestore emulator (runner/journal,
DurableWrites.note_failure): a write that does not answer in time is confirmed by a ping;
the runner switches to outage mode only when the ping fails too. The store is cut by a
FaultProxy in front of the emulator, as in tests/e2e/test_store_outage.py."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.faultproxy import FaultProxy
from devstack.stack import Stack
from runner.io import Offload
from runner.journal import DurableWrites, Entry, Journal
from wagate import logs
from wagate.contracts import AlertDoc

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def logs_to_this_test() -> None:
    """The runner's code logs through structlog, which an earlier test may have pointed at a
    captured stream pytest has closed since."""
    logs.configure("console", "WARNING")


@pytest.fixture
def proxied(firestore_env: dict[str, str], firestore_emulator: Stack) -> Iterator[FaultProxy]:
    proxy = FaultProxy(firestore_emulator.ports["firestore"])
    proxy.start()
    before = os.environ["FIRESTORE_EMULATOR_HOST"]
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{proxy.port}"
    try:
        yield proxy
    finally:
        os.environ["FIRESTORE_EMULATOR_HOST"] = before
        proxy.stop()


def writes_on(tmp_path: Path, io: Offload) -> tuple[DurableWrites, list[Entry]]:
    from wagate.adapters.firestore import FirestoreStore, make_client

    store = FirestoreStore(make_client(f"c-{uuid.uuid4().hex[:10]}"))
    store.ping()  # connected through the proxy
    writes = DurableWrites(Journal(tmp_path / "j.sqlite3"), io, store, timeout_s=0.2)
    applied: list[Entry] = []

    async def apply(entries: list[Entry]) -> None:
        applied.extend(entries)

    writes.handle("note", apply)
    return writes, applied


async def slow_write() -> None:
    await asyncio.sleep(1.0)  # answers, after the write's deadline


@pytest.fixture
def io() -> Iterator[Any]:
    pool = Offload(4)
    yield pool
    pool.shutdown()


async def until(check: Any, seconds: float) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)


def test_a_slow_write_while_the_store_answers_is_not_an_outage(
    proxied: FaultProxy, tmp_path: Path, io: Offload
) -> None:
    writes, applied = writes_on(tmp_path, io)

    async def scenario() -> None:
        assert await writes.write("note", "k", AlertDoc(id="a", kind="k", subject="s"), slow_write)
        await until(lambda: writes.slow_answers or writes.store_degraded, 5)
        await until(lambda: writes.backlog == 0, 5)
        await asyncio.sleep(1.0)  # the slow call ends (and wakes the replayer) before the stop
        await writes.stop()

    asyncio.run(scenario())
    assert not writes.store_degraded and writes.slow_answers == 1
    assert len(applied) == 1


def test_a_timeout_while_the_store_is_cut_is_an_outage(
    proxied: FaultProxy, tmp_path: Path, io: Offload
) -> None:
    writes, _ = writes_on(tmp_path, io)
    degraded: list[bool] = []

    async def scenario() -> None:
        proxied.cut("blackhole")  # nothing passes: only timeouts tell
        await writes.write("note", "k", AlertDoc(id="a", kind="k", subject="s"), slow_write)
        await until(lambda: writes.store_degraded, 10)
        degraded.append(writes.store_degraded)
        proxied.restore()
        await asyncio.sleep(1.0)  # the slow call ends (and wakes the replayer) before the stop
        await writes.stop()

    asyncio.run(scenario())
    assert degraded == [True] and writes.slow_answers == 0
