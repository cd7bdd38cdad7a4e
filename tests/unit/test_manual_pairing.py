"""runner.engines.manual_pairing: the real-phone test's four steps, against a scripted engine
(the real ones need WhatsApp and a phone)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import pytest

from runner.engines.event_stream import EventQueue, EventStream
from runner.engines.manual_pairing import ManualTest, add_arguments, run_manual_test
from tests.simulator.harness import run
from wagate.domain.events import AuthStateChanged, Connected, Disconnected, MessageAck


class ScriptedConnection:
    """Links at once, acks every send, captures a new auth state on connect."""

    def __init__(self, engine: ScriptedEngine, auth_state: bytes | None) -> None:
        self.engine = engine
        self.auth_state = auth_state
        self.queue = EventQueue()

    def events(self) -> EventStream:
        return self.queue.stream()

    async def connect(self) -> None:
        self.engine.opened_with.append(self.auth_state)
        self.queue.put(Connected("15550100@s.whatsapp.net"))
        self.queue.put(AuthStateChanged(b"state-%d" % len(self.engine.opened_with)))

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        self.engine.sent.append(wa_id)
        return MessageAck(wa_id, datetime.now(UTC))

    async def request_pairing_code(self, phone: str) -> str:
        return "ABCD-EFGH"

    async def logout(self) -> None:
        self.queue.put(Disconnected(401, "logged out by request"))

    async def close(self) -> None:
        self.queue.end()


class ScriptedEngine:
    def __init__(self) -> None:
        self.opened_with: list[bytes | None] = []
        self.sent: list[str] = []
        self.closed = False

    def open(self, session_id: str, auth_state: bytes | None) -> ScriptedConnection:
        return ScriptedConnection(self, auth_state)

    async def aclose(self) -> None:
        self.closed = True


def test_the_steps_reconnect_from_the_captured_state_and_send_one_id_twice() -> None:
    engine = ScriptedEngine()
    test = ManualTest(to="+15550199", logout=True, listen_s=0, wa_id_prefix="WG")
    newest = run(lambda: run_manual_test(engine, test), timeout=10)
    assert engine.opened_with == [None, b"state-1"]  # step 3 needs no QR: it has the state
    assert len(engine.sent) == 2 and engine.sent[0] == engine.sent[1]
    assert engine.sent[0].startswith("WG")
    assert newest == b"state-2" and engine.closed


def test_a_disconnect_while_waiting_for_the_link_fails_the_run() -> None:
    class Refused(ScriptedConnection):
        async def connect(self) -> None:
            self.queue.put(Disconnected(403, "banned"))

    class RefusingEngine(ScriptedEngine):
        def open(self, session_id: str, auth_state: bytes | None) -> ScriptedConnection:
            return Refused(self, auth_state)

    with pytest.raises(SystemExit, match="403"):
        run(lambda: run_manual_test(RefusingEngine(), ManualTest(to="+1555")), timeout=10)


def test_every_engines_script_takes_the_same_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--to", "+15550199", "--pair-phone", "+15550100", "--logout"])
    test = ManualTest.from_args(args, settle_s=4.0)
    assert test == ManualTest(
        to="+15550199", pair_phone="+15550100", logout=True, listen_s=30.0, settle_s=4.0
    )
