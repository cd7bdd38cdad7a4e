"""whatsmeow's connection events (as neonize's protobuf objects) → the one reason code each
socket closes with. Pure functions over the library's own objects, so the unit tests feed them
exactly what the library hands the host (wagate.domain.sessions decides what a reason means).

Disconnect kinds whatsmeow reports (go.mau.fi/whatsmeow types/events, connectionevents.go) and
the reason each becomes (wagate.domain.sessions decides what a reason means):

| whatsmeow event                              | reason      | why                           |
|----------------------------------------------|-------------|-------------------------------|
| LoggedOut (logged out, main device gone)     | 401         | device removed, store deleted |
| LoggedOut (unknown logout, "BANNED" in web)  | 403         | an operator must look         |
| TemporaryBan                                 | 403         | detail says when it ends      |
| StreamReplaced                               | 440         | another socket took over      |
| ConnectFailure 401 / 403 / 406               | 401/401/403 | as LoggedOut                  |
| ConnectFailure 402 (temp banned)             | 403         | as TemporaryBan               |
| ConnectFailure 500 / 503 / other             | 500/503/503 | transient: backoff            |
| ClientOutdated                               | 503         | the alert after 5 says why    |
| StreamError (code N)                         | N or 428    | N if wagate knows N           |
| Disconnected after a KeepAliveTimeout        | 408         | the socket went silent        |
| Disconnected                                 | 428         | a plain network close         |
| PairStatus error                             | 500         | next attempt shows a new QR   |
| QR channel "timeout"                         | 408         | nobody scanned in time        |
| QR channel "err-scanned-without-multidevice" | 411         | multi-device is off           |
| QR channel "err-client-outdated"             | 503         | as ClientOutdated             |
| connect() error (DNS, TCP, TLS, handshake)   | 503         | WhatsApp unreachable          |

StreamError 515 (restart required) never reaches us: whatsmeow reconnects by itself within the
same client, which is what 515 asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neonize import events as ev
from neonize.proto.Neonize_pb2 import ConnectFailureReason

from wagate.domain.sessions import DisconnectReason as R

# The events ReasonMapper reads (the host subscribes to them).
CONNECTION_EVENTS = (
    ev.ClientOutdatedEv,
    ev.ConnectFailureEv,
    ev.DisconnectedEv,
    ev.KeepAliveRestoredEv,
    ev.KeepAliveTimeoutEv,
    ev.LoggedOutEv,
    ev.PairStatusEv,
    ev.StreamErrorEv,
    ev.StreamReplacedEv,
    ev.TemporaryBanEv,
)


@dataclass(frozen=True)
class Close:
    """The socket is over: report `Disconnected(reason, detail)` once and stop the client."""

    reason: int
    detail: str


_CONNECT_FAILURE: dict[int, tuple[int, str]] = {
    ConnectFailureReason.LOGGED_OUT: (R.LOGGED_OUT, "logged out from another device"),
    ConnectFailureReason.MAIN_DEVICE_GONE: (R.LOGGED_OUT, "the primary device was logged out"),
    ConnectFailureReason.UNKNOWN_LOGOUT: (R.BANNED, "logged out for an unknown reason (banned)"),
    ConnectFailureReason.TEMP_BANNED: (R.BANNED, "account temporarily banned"),
    ConnectFailureReason.CLIENT_OUTDATED: (R.UNAVAILABLE, "client outdated: upgrade neonize"),
    ConnectFailureReason.BAD_USER_AGENT: (R.UNAVAILABLE, "client user agent was rejected"),
    ConnectFailureReason.INTERNAL_SERVER_ERROR: (R.BAD_SESSION, "WhatsApp internal server error"),
    ConnectFailureReason.SERVICE_UNAVAILABLE: (R.UNAVAILABLE, "WhatsApp service unavailable"),
    ConnectFailureReason.EXPERIMENTAL: (R.UNAVAILABLE, "experimental connect failure"),
    ConnectFailureReason.GENERIC: (R.UNAVAILABLE, "generic connect failure"),
}

_TEMP_BAN = {
    1: "sent too many messages to people who don't have you in their address books",
    2: "too many people blocked you",
    3: "created too many groups with people who don't have you in their address books",
    4: "sent the same message to too many people",
    5: "sent too many messages to a broadcast list",
}

_LOGIN_STATUS: dict[str, tuple[int, str]] = {
    "timeout": (R.TIMED_OUT, "the QR code was not scanned in time"),
    "err-scanned-without-multidevice": (
        R.MULTIDEVICE_MISMATCH,
        "the QR was scanned by a phone without multi-device",
    ),
    "err-client-outdated": (R.UNAVAILABLE, "client outdated: upgrade neonize"),
}


class ReasonMapper:
    """Turns the library's connection events into at most one `Close` per socket. Stateful only
    for keep-alive: a Disconnected that follows a KeepAliveTimeout is a silent socket (408)."""

    def __init__(self) -> None:
        self.keepalive_failed = False

    def on_event(self, event: Any) -> Close | None:
        if isinstance(event, ev.KeepAliveTimeoutEv):
            self.keepalive_failed = True
            return None
        if isinstance(event, ev.KeepAliveRestoredEv):
            self.keepalive_failed = False
            return None
        if isinstance(event, ev.LoggedOutEv):
            reason, detail = _CONNECT_FAILURE.get(event.Reason, (R.LOGGED_OUT, "logged out"))
            if reason != R.BANNED:
                reason = R.LOGGED_OUT  # whatsmeow deleted the device either way
            where = "at connect" if event.OnConnect else "by the server"
            return Close(reason, f"{detail} ({where})")
        if isinstance(event, ev.TemporaryBanEv):
            why = _TEMP_BAN.get(int(event.Code), "terms of service (unknown reason)")
            expires = f"; it expires in {int(event.Expire)} s" if event.Expire else ""
            return Close(R.BANNED, f"temporarily banned: {why}{expires}")
        if isinstance(event, ev.StreamReplacedEv):
            return Close(R.REPLACED, "another connection replaced this one (stream replaced)")
        if isinstance(event, ev.ConnectFailureEv):
            reason, detail = _CONNECT_FAILURE.get(event.Reason, (R.UNAVAILABLE, "connect failure"))
            message = f": {event.Message}" if event.Message else ""
            return Close(reason, f"{detail}{message}")
        if isinstance(event, ev.ClientOutdatedEv):
            return Close(R.UNAVAILABLE, "client outdated: upgrade neonize")
        if isinstance(event, ev.StreamErrorEv):
            return Close(stream_error_reason(event.Code), f"stream error {event.Code}")
        if isinstance(event, ev.DisconnectedEv):
            if self.keepalive_failed:
                return Close(R.TIMED_OUT, "keep-alive timed out")
            return Close(R.CLOSED, "connection closed")
        if isinstance(event, ev.PairStatusEv) and event.Status == ev.PairStatusEv.ERROR:
            return Close(R.BAD_SESSION, f"pairing failed: {event.Error}")
        return None


def stream_error_reason(code: str) -> int:
    try:
        return int(R(int(code)))
    except ValueError:
        return int(R.CLOSED)


def login_status_close(status: str) -> Close | None:
    """The QR channel's end states other than "code" and "success"."""
    if status in ("success", "code"):
        return None
    reason, detail = _LOGIN_STATUS.get(status, (R.BAD_SESSION, f"pairing failed: {status}"))
    return Close(reason, detail)


def connect_error_close(error: str) -> Close:
    """connect() itself failed: DNS, TCP, TLS or the noise handshake. Always transient."""
    return Close(R.UNAVAILABLE, f"cannot reach WhatsApp: {error}")
