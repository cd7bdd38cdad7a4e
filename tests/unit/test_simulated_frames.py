"""runner.engines.simulated.frames: the simulator protocol's frames → wagate's events and send
errors (simulator/PROTOCOL.md), without a socket."""

from __future__ import annotations

from datetime import UTC, datetime

from runner.engines.simulated import frames
from wagate.domain.events import InboundMessage, Receipt
from wagate.errors import PermanentSendError, TransientSendError


def test_a_close_code_above_4000_carries_the_reason_and_any_other_close_is_428() -> None:
    assert frames.close_reason(4401, "logged out") == (401, "logged out")
    assert frames.close_reason(4515, "") == (515, "")
    assert frames.close_reason(1000, "") == (428, "connection closed")
    assert frames.close_reason(None, "bye") == (428, "bye")
    assert frames.close_reason(5000, "") == (428, "connection closed")


def test_a_refused_send_is_permanent_or_transient_with_the_servers_retry_hint() -> None:
    refused = frames.nack_error({"code": "not_on_whatsapp", "message": "no", "permanent": True})
    assert isinstance(refused, PermanentSendError) and refused.field == "to"
    limited = frames.nack_error({"code": "rate_limited", "message": "slow", "retry_after": 7})
    assert isinstance(limited, TransientSendError) and limited.retry_after == 7.0
    assert frames.nack_error({"code": "x"}).retry_after is None


def test_receipts_and_inbound_messages_become_typed_events() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    frame = {"kind": "read", "ids": ["a", "b"], "chat": "1@s.whatsapp.net", "ts": ts.timestamp()}
    assert frames.receipt(frame) == Receipt(("a", "b"), "read", "1@s.whatsapp.net", ts)
    assert frames.receipt({"kind": "played", "ids": []}).kind == "delivered"
    message = {"id": "m1", "chat": "c", "sender": "s", "content": {"body": "hi"}, "ts": 1767225600}
    assert frames.inbound_message(message, from_history=True) == InboundMessage(
        wa_id="m1",
        chat="c",
        sender="s",
        kind="text",
        content={"body": "hi"},
        ts=ts,
        from_history=True,
        from_me=False,
    )


def test_a_frame_without_a_usable_timestamp_is_stamped_now() -> None:
    before = datetime.now(UTC)
    assert frames.timestamp(None) >= before
    assert frames.timestamp("not a number") >= before
