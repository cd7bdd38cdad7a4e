"""A slow store is not a down one (runner/journal, DurableWrites.note_failure): a call that
did not answer in time puts the runner in outage mode only if a ping fails too. A slow answer
taken for an outage cost a burst recovery 37 s of journaling, with statuses at the api 5 s
behind the recipient for most messages (docs/decisions.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import runner.journal.durable_writes as durable_writes
from runner.io import Offload
from runner.journal import DurableWrites, Entry, Journal, StoreTimedOut
from wagate.adapters.memory import MemoryStore
from wagate.contracts import AlertDoc
from wagate.errors import DependencyUnavailable


class Pinged(MemoryStore):
    """The in-memory store whose ping answers, fails, or hangs."""

    def __init__(self, ping: str = "answers") -> None:
        super().__init__()
        self.ping_mode = ping
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        if self.ping_mode == "fails":
            raise DependencyUnavailable("Firestore unavailable during ping")
        if self.ping_mode == "hangs":
            time.sleep(1.0)


def durable(tmp_path: Path, store: Any, io: Offload) -> tuple[DurableWrites, list[Entry]]:
    """Write-behind with a short write deadline; its "note" records land in the list."""
    writes = DurableWrites(Journal(tmp_path / "j.sqlite3"), io, store, timeout_s=0.05)
    applied: list[Entry] = []

    async def apply(entries: list[Entry]) -> None:
        applied.extend(entries)

    writes.handle("note", apply)
    return writes, applied


def record() -> AlertDoc:
    return AlertDoc(id="a1", kind="k", subject="s", message="m")


async def slow_write() -> None:
    await asyncio.sleep(0.3)  # answers, but after the write's deadline


async def settle(writes: DurableWrites) -> None:
    for _ in range(100):
        if writes._probe is None and writes.backlog == 0:
            return
        await asyncio.sleep(0.02)


@pytest.fixture
def io() -> Any:
    pool = Offload(4)
    yield pool
    pool.shutdown()


def test_a_write_that_times_out_while_a_ping_answers_is_not_an_outage(
    tmp_path: Path, io: Offload
) -> None:
    store = Pinged("answers")
    writes, applied = durable(tmp_path, store, io)

    async def scenario() -> None:
        journaled = await writes.write("note", "k1", record(), slow_write)
        assert journaled  # the record is kept: the slow call may or may not land
        await settle(writes)
        await asyncio.sleep(0.3)  # the slow call ends (and wakes the replayer) before the stop
        await writes.stop()

    asyncio.run(scenario())
    assert store.pings == 1
    assert not writes.store_degraded and writes.slow_answers == 1
    assert writes.backlog == 0 and len(applied) == 1  # replayed at once, not after a backoff


@pytest.mark.parametrize("ping", ["fails", "hangs"])
def test_a_write_that_times_out_while_a_ping_fails_or_hangs_is_an_outage(
    tmp_path: Path, io: Offload, ping: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durable_writes, "PROBE_TIMEOUT_S", 0.2)
    writes, _ = durable(tmp_path, Pinged(ping), io)
    degraded: list[bool] = []

    async def scenario() -> None:
        await writes.write("note", "k1", record(), slow_write)
        for _ in range(100):
            if writes.store_degraded:
                break
            await asyncio.sleep(0.02)
        degraded.append(writes.store_degraded)  # (the replay of this fake record clears it)
        await asyncio.sleep(0.3)
        await writes.stop()

    asyncio.run(scenario())
    assert degraded == [True] and writes.slow_answers == 0


def test_a_failure_the_store_reports_is_an_outage_at_once(tmp_path: Path, io: Offload) -> None:
    store = Pinged("answers")
    writes, _ = durable(tmp_path, store, io)

    async def scenario() -> None:
        writes.note_failure(DependencyUnavailable("Firestore unavailable during commit"))
        await writes.stop()

    asyncio.run(scenario())
    assert writes.store_degraded and store.pings == 0


def test_one_probe_at_a_time(tmp_path: Path, io: Offload) -> None:
    store = Pinged("hangs")
    writes, _ = durable(tmp_path, store, io)

    async def scenario() -> None:
        for _ in range(5):
            writes.note_failure(StoreTimedOut("the store did not answer within 10s"))
        await asyncio.sleep(0.05)
        await writes.stop()

    asyncio.run(scenario())
    assert store.pings == 1
