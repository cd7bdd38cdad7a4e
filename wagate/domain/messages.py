"""The outbound message status machine (SPEC §3) as a pure function.

accepted → queued → sending → sent → delivered → read, with failed (retryable) and dead
(terminal until an operator retries it). `sending → sending` is a re-claim after a crash
mid-send: the deterministic WhatsApp id makes the resend harmless.
"""

from __future__ import annotations

from enum import StrEnum

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
