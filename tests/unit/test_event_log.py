"""The stream's event log: logged once per event id, read in order past a cursor once settled,
framed as Server-Sent Events, ended after the hold time with the position to resume from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wagate.adapters.memory import MemoryStore
from wagate.contracts import WebhookEvent
from wagate.errors import ValidationFailed
from wagate.services.event_log import EventLog, parse_cursor

T0 = datetime(2026, 1, 2, tzinfo=UTC)


class StepClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0


def event(n: int, session: str = "s1") -> WebhookEvent:
    return WebhookEvent(
        id=f"evt_{n:032x}", type="session.state", session_id=session, created_at=T0, data={"n": n}
    )


def test_entries_come_in_order_past_the_cursor_once_settled_and_only_once() -> None:
    clock = StepClock()
    log = EventLog(MemoryStore(), clock)
    start = log.start()
    for n in range(3):
        clock.at += timedelta(milliseconds=10)
        log.record("t1", event(n))
    log.record("t1", event(1))  # announced again: no second entry
    log.record("t2", event(9))
    assert log.after("t1", start, session_id=None) == []  # not settled yet
    clock.at += timedelta(seconds=2)
    got = log.after("t1", start, session_id=None)
    assert [d.event.data["n"] for d in got] == [0, 1, 2]
    assert [d.event.data["n"] for d in log.after("t1", got[0].seq, session_id=None)] == [1, 2]
    assert log.after("t1", start, session_id="other") == []


def test_the_stream_frames_events_and_ends_with_the_position_to_resume_from() -> None:
    clock = StepClock()
    log = EventLog(MemoryStore(), clock)
    log.record("t1", event(1))
    clock.at += timedelta(seconds=2)
    frames = list(
        log.stream("t1", "0" * 13 + "-evt_" + "0" * 32, session_id=None, types=None, hold_s=0.0)
    )
    assert frames[0].startswith("retry: ")
    seq = log.after("t1", "0" * 13 + "-evt_" + "0" * 32, session_id=None)[0].seq
    assert frames[1].startswith(f"id: {seq}\nevent: session.state\ndata: {{")
    assert frames[-1].startswith(f"id: {seq}\n")
    skipped = list(log.stream("t1", None, session_id=None, types={"message.status"}, hold_s=0))
    assert not any("data:" in f for f in skipped)


@pytest.mark.parametrize("bad", ["x", "123-evt_1", "0000000000000-evt_" + "g" * 32])
def test_a_cursor_that_is_no_stream_id_is_a_400(bad: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_cursor(bad)
