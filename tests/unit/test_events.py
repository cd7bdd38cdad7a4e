"""Where an event goes (the session's webhook settings override the tenant's) and what a
session.state event says."""

from __future__ import annotations

from datetime import UTC, datetime

from wagate.contracts import SessionDoc, TenantDoc
from wagate.domain.sessions import SessionState
from wagate.services.events import reason_name, session_state_event, webhook_target

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def tenant(**fields: object) -> TenantDoc:
    return TenantDoc.model_validate({"id": "t1", "name": "acme", **fields})


def session(**fields: object) -> SessionDoc:
    return SessionDoc.model_validate({"id": "s1", "tenant_id": "t1", "shard": 0, **fields})


def test_an_event_goes_to_the_tenant_url_unless_the_session_has_its_own() -> None:
    t = tenant(webhook_url="https://t.example/hook")
    assert webhook_target(t, session(), "message.received") == "https://t.example/hook"
    own = session(webhook_url="https://s.example/hook")
    assert webhook_target(t, own, "message.received") == "https://s.example/hook"
    assert webhook_target(tenant(), own, "session.state") == "https://s.example/hook"
    assert webhook_target(tenant(), session(), "session.state") is None


def test_the_session_filter_replaces_the_tenant_filter() -> None:
    t = tenant(webhook_url="https://t.example/hook", webhook_events=["session.state"])
    assert webhook_target(t, session(), "message.status") is None
    assert webhook_target(t, session(), "session.state") is not None
    widened = session(webhook_events=["message.status"])
    assert webhook_target(t, widened, "message.status") is not None
    assert webhook_target(t, widened, "session.state") is None
    assert webhook_target(t, session(webhook_events=[]), "session.state") is None


def test_a_state_event_names_its_reason_and_attempt_and_repeats_with_the_same_id() -> None:
    event = session_state_event(
        "s1", SessionState.RECONNECTING, SessionState.CONNECTED, AT, reason=428, attempt=2
    )
    assert event.type == "session.state"
    assert event.data == {
        "state": "reconnecting",
        "previous": "connected",
        "reason": 428,
        "reason_name": "closed",
        "attempt": 2,
    }
    again = session_state_event(
        "s1", SessionState.RECONNECTING, SessionState.CONNECTED, AT, reason=428, attempt=2
    )
    assert again.id == event.id
    qr1 = session_state_event(
        "s1", SessionState.PAIRING, SessionState.PAIRING, AT, details={"qr": "a"}
    )
    qr2 = session_state_event(
        "s1", SessionState.PAIRING, SessionState.PAIRING, AT, details={"qr": "b"}
    )
    assert qr1.id != qr2.id  # each new QR is its own event


def test_unknown_reason_codes_have_no_name() -> None:
    assert reason_name(403) == "banned"
    assert reason_name(999) is None
    assert reason_name(None) is None
