"""The supervisor writes a session's state only through the transition table
(wagate/domain/sessions.py): a refused transition is neither written nor announced, and the
supervisor carries on from the state it had."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from runner.supervisor import SessionSupervisor
from wagate.adapters.memory import FixedClock
from wagate.contracts import SessionDoc
from wagate.domain.sessions import SessionState
from wagate.ports import Fence


class Recorder:
    """Stands in for the durable writes and the event publisher: records what reached them."""

    def __init__(self) -> None:
        self.written: list[Any] = []
        self.announced: list[tuple[SessionState, SessionState]] = []

    async def update_session(
        self, session_id: str, fence: Fence, fields: dict[str, Any], at: datetime
    ) -> None:
        self.written.append(fields["state"])

    async def state_changed(
        self,
        tenant_id: str,
        session_id: str,
        state: SessionState,
        previous: SessionState,
        fields: dict[str, Any],
        attempt: int,
    ) -> None:
        self.announced.append((previous, state))


def supervisor(state: SessionState, recorder: Recorder) -> SessionSupervisor:
    ctx = SimpleNamespace(
        fence=Fence(0, 1), durable=recorder, clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    )
    doc = SessionDoc(id="ses_1", tenant_id="ten_1", shard=0, state=state)
    return SessionSupervisor(doc, cast(Any, ctx), cast(Any, SimpleNamespace(events=recorder)))


def test_an_illegal_state_is_refused_and_the_supervisor_keeps_its_state() -> None:
    recorder = Recorder()
    session = supervisor(SessionState.STOPPED, recorder)
    asyncio.run(session._set_state(SessionState.CONNECTED))
    assert recorder.written == [] and recorder.announced == []
    assert session.state is SessionState.STOPPED


def test_legal_states_are_written_and_announced_in_order() -> None:
    recorder = Recorder()
    session = supervisor(SessionState.STOPPED, recorder)

    async def reconnect() -> None:
        await session._set_state(SessionState.CONNECTING)
        await session._set_state(SessionState.CONNECTED)

    asyncio.run(reconnect())
    assert recorder.written == [SessionState.CONNECTING, SessionState.CONNECTED]
    assert recorder.announced == [
        (SessionState.STOPPED, SessionState.CONNECTING),
        (SessionState.CONNECTING, SessionState.CONNECTED),
    ]
    assert session.state is SessionState.CONNECTED
