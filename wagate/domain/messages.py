"""The outbound message: its status machine (SPEC §3) and its lifecycle as an aggregate.

accepted → queued → sending → sent → delivered → read, with failed (retryable) and dead
(terminal until an operator retries it). `sending → sending` is a re-claim after a crash
mid-send: the deterministic WhatsApp id makes the resend harmless.

Every status write is one of the lifecycle steps at the end (claim, record_sent,
record_failure, apply_receipt, requeue, renew_task, replay_outcome): each takes a
MessageState and returns a MessageChange, run by ports.MessageRepository.update in one
transaction, or written blind from its patch where the caller owns the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from wagate.errors import IllegalTransition


class MessageStatus(StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    DEAD = "dead"


S = MessageStatus

ALLOWED: dict[MessageStatus, frozenset[MessageStatus]] = {
    S.ACCEPTED: frozenset({S.QUEUED, S.SENDING, S.DEAD}),
    S.QUEUED: frozenset({S.QUEUED, S.SENDING, S.DEAD}),
    S.SENDING: frozenset({S.SENDING, S.SENT, S.FAILED, S.DEAD, S.QUEUED}),
    S.FAILED: frozenset({S.SENDING, S.QUEUED, S.DEAD}),
    S.SENT: frozenset({S.DELIVERED, S.READ}),
    S.DELIVERED: frozenset({S.READ}),
    S.READ: frozenset(),
    S.DEAD: frozenset({S.QUEUED}),
}

# Receipts can arrive out of order; these statuses mean "WhatsApp has it".
ON_WHATSAPP = frozenset({S.SENT, S.DELIVERED, S.READ})
# A send task may (re)claim a message in these.
CLAIMABLE = frozenset({S.ACCEPTED, S.QUEUED, S.SENDING, S.FAILED})
PENDING = frozenset({S.ACCEPTED, S.QUEUED, S.SENDING, S.FAILED})
# For store queries ("status in …").
PENDING_VALUES = sorted(s.value for s in PENDING)


def chat_key(session_id: str, to: str) -> str:
    """One value naming a session's chat with a recipient (`PendingSend.chat`)."""
    return f"{session_id}|{to}"


def chat_of(key: str) -> tuple[str, str]:
    """(session id, recipient) of a `chat_key`."""
    session_id, _, to = key.partition("|")
    return session_id, to


def can_transition(current: MessageStatus, target: MessageStatus) -> bool:
    return target in ALLOWED[current]


def transition(current: MessageStatus, target: MessageStatus) -> MessageStatus:
    """Return `target` if the move is legal, else raise IllegalTransition."""
    if not can_transition(current, target):
        raise IllegalTransition(
            f"a message cannot go from {current.value} to {target.value}", field="status"
        )
    return target


def advance_by_receipt(current: MessageStatus, receipt: MessageStatus) -> MessageStatus:
    """Receipts only move a message forward; a late 'delivered' after 'read' changes nothing."""
    order = (S.SENT, S.DELIVERED, S.READ)
    if current in ON_WHATSAPP and receipt in order and order.index(receipt) > order.index(current):
        return receipt
    if current in (S.SENDING, S.QUEUED, S.ACCEPTED, S.FAILED) and receipt in order:
        # The receipt overtook our own 'sent' write (crash after the ack): WhatsApp has it.
        return receipt
    return current


# ---------------------------------------------------------------- the message aggregate

RECEIPTS = frozenset({S.DELIVERED, S.READ})
ERRORS_KEPT = 20  # a message keeps its last 20 send errors


class NotClaimable(Exception):
    """A send task found its message `sent` or later (or dead): nothing to send."""

    def __init__(self, status: MessageStatus) -> None:
        super().__init__(f"message is {status.value}")
        self.status = status


@dataclass(frozen=True)
class SendError:
    at: datetime
    code: str
    message: str
    attempt: int


@dataclass(frozen=True)
class MessageState:
    """What a message's lifecycle changes; the rest of the document (recipient, content…)
    never moves with its status. Adapters map the stored document to and from it."""

    status: MessageStatus
    updated_at: datetime
    attempts: int = 0
    task_generation: int = 0
    status_times: Mapping[str, datetime] = field(default_factory=dict)
    errors: tuple[SendError, ...] = ()
    dead_reason: str | None = None


@dataclass(frozen=True)
class MessageChange:
    """A lifecycle step's result: the new state, and the fields it changed as a partial
    update ("status_times.sent" names one map entry), for a writer that does not read first.
    An empty patch means the step changed nothing and nothing needs writing."""

    state: MessageState
    patch: Mapping[str, object]

    @property
    def changed(self) -> bool:
        return bool(self.patch)


def change_between(old: MessageState, new: MessageState) -> MessageChange:
    """The change from `old` to `new`; its patch names only what differs."""
    if new == old:
        return MessageChange(old, {})
    patch: dict[str, object] = {}
    for name in ("status", "attempts", "task_generation", "dead_reason"):
        if getattr(new, name) != getattr(old, name):
            patch[name] = getattr(new, name)
    for key, at in new.status_times.items():
        if old.status_times.get(key) != at:
            patch[f"status_times.{key}"] = at
    if new.errors != old.errors:
        patch["errors"] = [asdict(e) for e in new.errors]
    patch["updated_at"] = new.updated_at
    return MessageChange(new, patch)


def _moved(
    state: MessageState, status: MessageStatus, at: datetime, now: datetime, **fields: Any
) -> MessageState:
    """`state` in `status`, its time recorded (the one home of status_times bookkeeping)."""
    times = {**state.status_times, status.value: at, **fields.pop("times", {})}
    return replace(state, status=status, status_times=times, updated_at=now, **fields)


def _with_error(state: MessageState, error: SendError) -> dict[str, Any]:
    fields: dict[str, Any] = {"errors": (*state.errors[-(ERRORS_KEPT - 1) :], error)}
    return fields


def claim(state: MessageState, now: datetime) -> MessageChange:
    """A send task takes the message: `sending`, one more attempt. NotClaimable once WhatsApp
    has it (or it is dead)."""
    if state.status not in CLAIMABLE:
        raise NotClaimable(state.status)
    status = transition(state.status, S.SENDING)
    return change_between(state, _moved(state, status, now, now, attempts=state.attempts + 1))


def record_sent(state: MessageState, acked_at: datetime, now: datetime) -> MessageChange:
    """The server acked the claimed message: `sent` at WhatsApp's time."""
    return change_between(state, _moved(state, transition(state.status, S.SENT), acked_at, now))


def record_failure(
    state: MessageState, code: str, message: str, now: datetime, *, dead: bool
) -> MessageChange:
    """A send failed: `failed` (retryable) or `dead` (permanent error, last attempt), with the
    error kept. Unchanged if a receipt overtook it (WhatsApp has it) or the move is illegal."""
    target = S.DEAD if dead else S.FAILED
    if state.status in ON_WHATSAPP or not can_transition(state.status, target):
        return MessageChange(state, {})
    fields = _with_error(state, SendError(now, code, message, state.attempts))
    if dead:
        fields["dead_reason"] = f"{code}: {message}"
    return change_between(state, _moved(state, target, now, now, **fields))


def apply_receipt(
    state: MessageState, receipt: MessageStatus, at: datetime, now: datetime
) -> MessageChange:
    """delivered/read from WhatsApp; only ever forward (advance_by_receipt)."""
    new = advance_by_receipt(state.status, receipt)
    if new == state.status:
        return MessageChange(state, {})
    return change_between(state, _moved(state, new, at, now))


def requeue(state: MessageState, now: datetime) -> MessageChange:
    """An operator retries a dead letter: queued again under a fresh task generation (Cloud
    Tasks remembers the old name), its attempts counted from zero."""
    status = transition(state.status, S.QUEUED)
    return change_between(
        state,
        _moved(
            state,
            status,
            now,
            now,
            task_generation=state.task_generation + 1,
            attempts=0,
            dead_reason=None,
        ),
    )


def renew_task(state: MessageState, now: datetime) -> MessageChange:
    """The sweeper re-enqueues a message whose task name Cloud Tasks still remembers."""
    renewed = replace(state, task_generation=state.task_generation + 1, updated_at=now)
    return change_between(state, renewed)


def replay_outcome(
    state: MessageState,
    outcome: MessageStatus,
    at: datetime,
    now: datetime,
    *,
    started_at: datetime | None,
    claimed: bool,
    error: tuple[str, str] | None = None,
) -> MessageChange:
    """A journaled send outcome (sent/failed/dead) applied once the store is back. A send
    made without the claim also gets the claim's `sending` and attempt. Unchanged if stale:
    WhatsApp has it, it is dead (an operator decides), or a step is illegal."""
    if state.status in ON_WHATSAPP or state.status == S.DEAD:
        return MessageChange(state, {})
    steps = [outcome] if state.status == S.SENDING else [S.SENDING, outcome]
    status: MessageStatus = state.status
    for step in steps:
        if not can_transition(status, step):
            return MessageChange(state, {})
        status = step
    attempts = state.attempts if claimed else state.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts}
    if len(steps) == 2:
        fields["times"] = {S.SENDING.value: started_at or at}
    if error is not None:
        code, message = error
        fields.update(_with_error(state, SendError(at, code, message, attempts)))
        if outcome == S.DEAD:
            fields["dead_reason"] = f"{code}: {message}"
    return change_between(state, _moved(state, outcome, at, now, **fields))
