"""whatsmeow's connection events → the reason a socket closes with, fed with the library's own
event objects (neonize's protobuf messages, exactly what the host receives from the Go core)."""

from __future__ import annotations

from typing import Any

import pytest
from neonize.events import (
    ClientOutdatedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    PairStatusEv,
    ReceiptEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import JID, ConnectFailureReason

from runner.engines.whatsmeow import reasons
from runner.engines.whatsmeow.reasons import Close, ReasonMapper
from wagate.domain.sessions import DisconnectReason as R
from wagate.domain.sessions import ReconnectPolicy, policy_for


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def close_of(*events: Any) -> Close | None:
    mapper = ReasonMapper()
    result = None
    for event in events:
        result = mapper.on_event(event)
    return result


# ------------------------------------------------------------------ disconnect kinds

DISCONNECTS: list[tuple[str, Any, int]] = [
    ("logged out", LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.LOGGED_OUT), 401),
    ("device removed", LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.LOGGED_OUT), 401),
    (
        "main device gone",
        LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.MAIN_DEVICE_GONE),
        401,
    ),
    (
        "unknown logout",
        LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.UNKNOWN_LOGOUT),
        403,
    ),
    ("temporary ban", TemporaryBanEv(Code=TemporaryBanEv.BLOCKED_BY_USERS, Expire=3600), 403),
    ("stream replaced", StreamReplacedEv(), 440),
    ("client outdated", ClientOutdatedEv(), 503),
    ("stream error 503", StreamErrorEv(Code="503"), 503),
    ("stream error 500", StreamErrorEv(Code="500"), 500),
    ("stream error 401", StreamErrorEv(Code="401"), 401),
    ("stream error unknown", StreamErrorEv(Code="999"), 428),
    ("stream error not a number", StreamErrorEv(Code="xml-not-well-formed"), 428),
    ("network close", DisconnectedEv(status=True), 428),
    ("pair error", PairStatusEv(Status=PairStatusEv.ERROR, Error="bad hmac"), 500),
]


@pytest.mark.parametrize(
    ("event", "reason"), [d[1:] for d in DISCONNECTS], ids=[d[0] for d in DISCONNECTS]
)
def test_every_disconnect_kind_of_the_library_maps_to_a_reason(event: Any, reason: int) -> None:
    close = close_of(event)
    assert close is not None and close.reason == reason and close.detail


CONNECT_FAILURES = {
    "GENERIC": 503,
    "LOGGED_OUT": 401,
    "TEMP_BANNED": 403,
    "MAIN_DEVICE_GONE": 401,
    "UNKNOWN_LOGOUT": 403,
    "CLIENT_OUTDATED": 503,
    "BAD_USER_AGENT": 503,
    "INTERNAL_SERVER_ERROR": 500,
    "EXPERIMENTAL": 503,
    "SERVICE_UNAVAILABLE": 503,
}


def test_every_connect_failure_reason_of_the_library_has_a_deliberate_reason() -> None:
    """Iterates the library's own enum: a reason neonize adds later fails here until mapped."""
    names = [v.name for v in ConnectFailureReason.DESCRIPTOR.values]
    assert sorted(names) == sorted(CONNECT_FAILURES)
    for name in names:
        event = ConnectFailureEv(Reason=ConnectFailureReason.Value(name), Message="m")
        close = close_of(event)
        assert close is not None and close.reason == CONNECT_FAILURES[name], name
        assert close.detail.endswith(": m")


def test_the_mapped_reasons_get_the_intended_supervisor_policy() -> None:
    expected = {
        "logged out": ReconnectPolicy.LOGGED_OUT,
        "unknown logout": ReconnectPolicy.BANNED,
        "temporary ban": ReconnectPolicy.BANNED,
        "stream replaced": ReconnectPolicy.REPLACED,
        "client outdated": ReconnectPolicy.RETRY,
        "network close": ReconnectPolicy.RETRY,
        "pair error": ReconnectPolicy.RETRY,
    }
    for name, event, _ in DISCONNECTS:
        if name in expected:
            close = close_of(event)
            assert close is not None
            assert policy_for(close.reason) is expected[name], name


def test_a_temporary_ban_says_why_and_when_it_ends() -> None:
    close = close_of(TemporaryBanEv(Code=TemporaryBanEv.SEND_TO_TOO_MANY_PEOPLE, Expire=7200))
    assert close is not None
    assert "address books" in close.detail and "7200 s" in close.detail


def test_a_close_after_a_keepalive_timeout_is_408_and_a_restored_keepalive_forgets_it() -> None:
    timeout = KeepAliveTimeoutEv(ErrorCount=3, LastSuccess=0)
    assert close_of(timeout) is None
    silent = close_of(timeout, DisconnectedEv(status=True))
    assert silent == Close(R.TIMED_OUT, "keep-alive timed out")
    restored = close_of(timeout, KeepAliveRestoredEv(), DisconnectedEv(status=True))
    assert restored is not None and restored.reason == R.CLOSED


def test_events_that_do_not_end_the_socket_map_to_no_close() -> None:
    paired = PairStatusEv(Status=PairStatusEv.SUCCESS, ID=jid("15550500001"))
    assert close_of(paired) is None
    assert close_of(ReceiptEv()) is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("timeout", R.TIMED_OUT),
        ("err-scanned-without-multidevice", R.MULTIDEVICE_MISMATCH),
        ("err-client-outdated", R.UNAVAILABLE),
        ("err-unexpected-state", R.BAD_SESSION),
        ("error", R.BAD_SESSION),
    ],
)
def test_qr_channel_end_states_map_to_reasons(status: str, reason: int) -> None:
    close = reasons.login_status_close(status)
    assert close is not None and close.reason == reason


def test_a_successful_qr_scan_is_not_a_close() -> None:
    assert reasons.login_status_close("success") is None


def test_a_connect_error_is_503_with_the_librarys_words() -> None:
    close = reasons.connect_error_close("dial tcp: lookup web.whatsapp.com: no such host")
    assert close.reason == R.UNAVAILABLE and "no such host" in close.detail
