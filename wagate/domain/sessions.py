"""Session states and the disconnect-reason table (SPEC §4).

Reason codes follow WhatsApp's (as named by whatsmeow and Baileys): what each means for the
supervisor is decided here, once, and unit-tested.
"""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum

from wagate.errors import IllegalTransition


class SessionState(StrEnum):
    CREATED = "created"
    PAIRING = "pairing"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    LOGGED_OUT = "logged_out"
    FAILED = "failed"
    STOPPED = "stopped"


class DesiredState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # an operator stopped it (`wagate sessions stop`): recover resumes it
    DELETED = "deleted"  # the tenant deleted it: nothing brings it back


class DisconnectReason(IntEnum):
    LOGGED_OUT = 401
    BANNED = 403
    TIMED_OUT = 408
    MULTIDEVICE_MISMATCH = 411
    CLOSED = 428
    REPLACED = 440
    BAD_SESSION = 500
    UNAVAILABLE = 503
    RESTART_REQUIRED = 515


class ReconnectPolicy(Enum):
    RETRY = "retry"  # transient: reconnect with backoff, unbounded attempts
    RETRY_NOW = "retry_now"  # the server asked for a restart: reconnect at once
    LOGGED_OUT = "logged_out"  # permanent: credentials are gone, a new QR is needed
    BANNED = "banned"  # permanent: the number is banned
    REPLACED = "replaced"  # another socket holds the account: do not fight, check the lease


POLICY: dict[DisconnectReason, ReconnectPolicy] = {
    DisconnectReason.LOGGED_OUT: ReconnectPolicy.LOGGED_OUT,
    DisconnectReason.BANNED: ReconnectPolicy.BANNED,
    DisconnectReason.TIMED_OUT: ReconnectPolicy.RETRY,
    # A multidevice mismatch means the stored device no longer matches: like a logout.
    DisconnectReason.MULTIDEVICE_MISMATCH: ReconnectPolicy.LOGGED_OUT,
    DisconnectReason.CLOSED: ReconnectPolicy.RETRY,
    DisconnectReason.REPLACED: ReconnectPolicy.REPLACED,
    DisconnectReason.BAD_SESSION: ReconnectPolicy.RETRY,
    DisconnectReason.UNAVAILABLE: ReconnectPolicy.RETRY,
    DisconnectReason.RESTART_REQUIRED: ReconnectPolicy.RETRY_NOW,
}

ALERT_AFTER_CONSECUTIVE_FAILURES = 5


def policy_for(code: int) -> ReconnectPolicy:
    """Unknown codes are treated as transient: retrying is safe, giving up loses the session."""
    try:
        return POLICY[DisconnectReason(code)]
    except ValueError:
        return ReconnectPolicy.RETRY


St = SessionState
# Every transition the supervisor makes (runner/supervisor.py `_set_state`, which refuses the
# others): a (re)connect starts in connecting or pairing from any state, a restore that fails
# before it reconnects from the state the session was started in.
SESSION_ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    St.CREATED: frozenset({St.PAIRING, St.CONNECTING, St.RECONNECTING, St.STOPPED, St.FAILED}),
    St.PAIRING: frozenset(
        {St.PAIRING, St.CONNECTING, St.CONNECTED, St.RECONNECTING, St.LOGGED_OUT, St.FAILED}
        | {St.STOPPED}
    ),
    St.CONNECTING: frozenset(
        {St.CONNECTING, St.CONNECTED, St.RECONNECTING, St.PAIRING, St.LOGGED_OUT, St.FAILED}
        | {St.STOPPED}
    ),
    St.CONNECTED: frozenset(
        {St.RECONNECTING, St.LOGGED_OUT, St.FAILED, St.STOPPED, St.CONNECTING, St.PAIRING}
    ),
    St.RECONNECTING: frozenset(
        {St.RECONNECTING, St.CONNECTING, St.PAIRING, St.CONNECTED, St.LOGGED_OUT, St.FAILED}
        | {St.STOPPED}
    ),
    St.LOGGED_OUT: frozenset({St.PAIRING, St.CONNECTING, St.RECONNECTING, St.STOPPED}),
    St.FAILED: frozenset({St.CONNECTING, St.RECONNECTING, St.PAIRING, St.STOPPED}),
    St.STOPPED: frozenset({St.CONNECTING, St.PAIRING, St.RECONNECTING}),
}


def session_transition(current: SessionState, target: SessionState) -> SessionState:
    """The state a session may take next; IllegalTransition for one the table does not hold."""
    if target == current and target in (St.CONNECTED, St.STOPPED):
        return target
    if target not in SESSION_ALLOWED[current]:
        raise IllegalTransition(
            f"a session cannot go from {current.value} to {target.value}", field="state"
        )
    return target
