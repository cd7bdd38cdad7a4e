"""Parked sends (runner/parking.py): a send turned away for now is woken with RunTask when
what refused it clears, instead of waiting for the queue's exponential backoff."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest

import runner.sending as sending
from runner.parking import CONNECT_WAKE, Parking, TaskRef
from tests.unit import test_journal_sending as journal_sending
from tests.unit.test_journal import T0, World
from tests.unit.test_journal_sending import Phone, handler, task
from wagate.ports import TaskSpec


class Woken:
    """run_now that records what it woke; names in `gone` answer "no such task"."""

    def __init__(self, gone: set[str] | None = None) -> None:
        self.names: list[str] = []
        self.gone = gone or set()

    async def __call__(self, ref: TaskRef) -> bool:
        if ref.name in self.gone:
            return False
        self.names.append(ref.name)
        return True


def ref(name: str) -> TaskRef:
    return TaskRef("wagate-s0-normal", name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_chat_wakes_its_oldest_parked_send_one_at_a_time() -> None:
    woken = Woken()
    parking = Parking(woken)

    async def scenario() -> None:
        for n in (3, 1, 2):
            parking.park_for_chat(f"m{n}", "s", "+1", T0 + timedelta(seconds=n), ref(f"t{n}"))
        parking.park_for_chat("other", "s", "+2", T0, ref("t-other"))
        parking.chat_moved("s", "+1")
        await settle()
        assert woken.names == ["t1"]
        parking.chat_moved("s", "+1")
        await settle()
        assert woken.names == ["t1", "t2"]

    asyncio.run(scenario())
    assert len(parking) == 2  # m3 and the other chat's send still wait


def test_a_send_that_arrives_on_its_own_is_no_longer_parked() -> None:
    woken = Woken()
    parking = Parking(woken)

    async def scenario() -> None:
        parking.park_for_chat("m1", "s", "+1", T0, ref("t1"))
        parking.park_for_chat("m2", "s", "+1", T0 + timedelta(seconds=1), ref("t2"))
        parking.arrived("m1")  # its backoff ran out first
        parking.chat_moved("s", "+1")
        await settle()

    asyncio.run(scenario())
    assert woken.names == ["t2"]
    assert len(parking) == 0


def test_a_woken_task_that_is_gone_passes_its_turn_to_the_next() -> None:
    woken = Woken(gone={"t1"})
    parking = Parking(woken)

    async def scenario() -> None:
        parking.park_for_chat("m1", "s", "+1", T0, ref("t1"))
        parking.park_for_chat("m2", "s", "+1", T0 + timedelta(seconds=1), ref("t2"))
        parking.chat_moved("s", "+1")
        await settle()

    asyncio.run(scenario())
    assert woken.names == ["t2"]


def test_a_connected_session_wakes_a_few_and_pacing_drips_one() -> None:
    woken = Woken()
    parking = Parking(woken)

    async def scenario() -> None:
        for n in range(CONNECT_WAKE + 3):
            parking.park_for_session(f"m{n}", "s", T0 + timedelta(seconds=n), ref(f"t{n}"))
        parking.session_connected("s")
        await settle()
        assert woken.names == [f"t{n}" for n in range(CONNECT_WAKE)]
        parking.drip("s", 0.05)
        parking.drip("s", 0.5)  # a later timer does not replace the earlier one
        await asyncio.sleep(0.1)
        await settle()
        assert woken.names[-1] == f"t{CONNECT_WAKE}"
        assert len(parking) == 2
        await parking.close()

    asyncio.run(scenario())


def test_parking_is_bounded() -> None:
    parking = Parking(Woken(), limit=2)
    for n in range(5):
        parking.park_for_session(f"m{n}", "s", T0, ref(f"t{n}"))
    assert len(parking) == 2


# ---------------------------------------------------------------- in the send handler


world = journal_sending.world  # the same fixture: a store, a journal and a tenant


def test_a_send_refused_for_its_chat_order_is_run_again_when_the_older_one_is_sent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "ORDER_WAIT_S", 0.05)
    sender, phone = handler(world), Phone()
    first = task(world, "msg_1", "first", offset_s=0)
    second = task(world, "msg_2", "second", offset_s=1)
    queue = "wagate-s0-normal"
    for t in (first, second):  # the tasks exist in the queue, so RunTask finds them
        world.queue.enqueue(TaskSpec(queue=queue, name=f"task-{t.message_id}", url="x", body=b""))

    async def scenario() -> None:
        refused = await sender.handle(
            second, cast(Any, phone), draining=False, ref=TaskRef(queue, "task-msg_2")
        )
        assert refused.status == 503  # msg_1 is older and still pending
        assert world.queue.ran == []
        sent = await sender.handle(
            first, cast(Any, phone), draining=False, ref=TaskRef(queue, "task-msg_1")
        )
        assert sent.status == 200
        await settle()
        await asyncio.sleep(0.05)  # run_now goes through the io pool
        await sender.close()

    asyncio.run(scenario())
    assert world.queue.ran == [(queue, "task-msg_2")]


def test_a_send_refused_while_the_session_reconnects_is_run_once_it_is_connected(
    world: World,
) -> None:
    sender, phone = handler(world), Phone()
    phone.connected = False
    t = task(world, "msg_1", "hello")
    queue = "wagate-s0-normal"
    world.queue.enqueue(TaskSpec(queue=queue, name="task-msg_1", url="x", body=b""))

    async def scenario() -> None:
        event = asyncio.Event()

        async def wait_connected(timeout: float) -> bool:
            await event.wait()
            return True

        phone.session_id = "ses_1"  # type: ignore[attr-defined]
        phone.wait_connected = wait_connected  # type: ignore[attr-defined]
        refused = await sender.handle(
            t, cast(Any, phone), draining=False, ref=TaskRef(queue, "task-msg_1")
        )
        assert refused.status == 503
        await settle()
        assert world.queue.ran == []
        event.set()
        await settle()
        await asyncio.sleep(0.05)
        await sender.close()

    asyncio.run(scenario())
    assert world.queue.ran == [(queue, "task-msg_1")]
