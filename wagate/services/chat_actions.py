"""Accepting chat actions (docs/messaging.md, "Chat actions"): mark read, presence, edit and
revoke. Each is a message document of its own (its content an ActionContent) written through the
outbox like a send, so it has the send's guarantees without a second pipeline: an
Idempotency-Key, a task named after it, the chat's order (the runner's order gate holds it
behind the chat's earlier sends), retries, a WhatsApp id derived from its id (an edit or revoke
resent after a crash is deduplicated by the recipient) and a status to read with
GET /v1/messages/{id}.

What can be refused here is refused here, with a code and the field: another tenant's message
(404), editing anything but a text, a message that is dead or revoked, a window that has passed.
The runner checks the windows again just before it sends (runner/chat_actions.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from wagate.contracts import (
    EditContent,
    InboundDoc,
    MessageDoc,
    PresenceContent,
    ReadContent,
    RevokeContent,
    StoredContent,
    TenantDoc,
    TextContent,
)
from wagate.domain import ids
from wagate.domain.chat_actions import EDIT_WINDOW, REVOKE_WINDOW, PresenceState, window_left
from wagate.domain.messages import ON_WHATSAPP, MessageStatus
from wagate.errors import Conflict, NotFound, Unprocessable
from wagate.ports import Clock, Store, Where
from wagate.services.directory import SessionDirectory
from wagate.services.outbox import Accepted, Outbox

# Read receipts go for the named message and the received ones before it in its chat, at most
# this many (WhatsApp's apps receipt a chat's unread messages in one batch when it is opened).
READ_BATCH = 100
# Chat actions and reactions are not messages a recipient sees: nothing to revoke.
NOT_REVOCABLE = frozenset({"read", "presence", "edit", "revoke", "reaction"})
# Actions are small and wanted now; they still wait behind the chat's earlier sends.
ACTION_PRIORITY = "high"


def jid_of(address: str) -> str:
    """A recipient as the API takes it (`+1555…`, a JID, a LID) in JID form."""
    return address if "@" in address else f"{address.removeprefix('+')}@s.whatsapp.net"


class ChatActions:
    def __init__(
        self, store: Store, outbox: Outbox, directory: SessionDirectory, clock: Clock
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._directory = directory
        self._clock = clock

    # ------------------------------------------------------------ chat actions

    def mark_read(
        self,
        tenant: TenantDoc,
        session_id: str,
        chat: str,
        up_to: str,
        *,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Accepted:
        session = self._directory.owned(tenant.id, session_id)
        inbound = self._store.subcollection("sessions", session.id, "inbound", InboundDoc)
        last = inbound.get(up_to)
        if last is None or jid_of(chat) not in {last.chat, last.sender_phone, last.sender_lid}:
            raise NotFound(f"no received message {up_to} in chat {chat}", field="up_to")
        earlier = inbound.query(
            [Where("chat", "==", last.chat)], order_by="ts", descending=True, limit=READ_BATCH
        )
        before = [m.id for m in earlier if m.ts <= last.ts and m.id != up_to][: READ_BATCH - 1]
        content = ReadContent(
            up_to=up_to,
            chat_jid=last.chat,
            wa_ids=[*reversed(before), up_to],
            sender=last.sender if last.chat.endswith("@g.us") else None,
        )
        return self._queue(
            tenant, session.id, session.shard, chat, content, idempotency_key, fingerprint
        )

    def set_presence(
        self,
        tenant: TenantDoc,
        session_id: str,
        chat: str,
        state: PresenceState,
        *,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Accepted:
        session = self._directory.owned(tenant.id, session_id)
        content = PresenceContent(state=state)
        return self._queue(
            tenant, session.id, session.shard, chat, content, idempotency_key, fingerprint
        )

    def edit(
        self,
        tenant: TenantDoc,
        message_id: str,
        text: str,
        *,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Accepted:
        target = self._outbox.get(tenant.id, message_id)
        if not isinstance(target.content, TextContent):
            raise Unprocessable(
                f"only a text can be edited; message {message_id} is a {target.content.type}",
                code="not_editable",
                field="message_id",
            )
        self._check_changeable(target, EDIT_WINDOW, "edit")
        content = EditContent(message_id=target.id, body=text)
        return self._queue_on(tenant, target, content, idempotency_key, fingerprint)

    def revoke(
        self, tenant: TenantDoc, message_id: str, *, idempotency_key: str | None, fingerprint: str
    ) -> Accepted:
        target = self._outbox.get(tenant.id, message_id)
        if target.revoked is not None:  # DELETE is idempotent: the revoke that did it
            return Accepted(self._outbox.get(tenant.id, target.revoked.action_id), created=False)
        if target.content.type in NOT_REVOCABLE:
            raise Unprocessable(
                f"message {message_id} is a {target.content.type}, which cannot be revoked "
                "(a reaction is removed by reacting with an empty emoji)",
                code="not_revocable",
                field="message_id",
            )
        self._check_changeable(target, REVOKE_WINDOW, "revoke")
        content = RevokeContent(message_id=target.id)
        # Without a key of the caller's, the message's own: a repeated DELETE while the first
        # revoke waits in the chat returns it instead of queueing another.
        key = idempotency_key if idempotency_key is not None else f"revoke {target.id}"
        return self._queue_on(tenant, target, content, key, fingerprint)

    # ------------------------------------------------------------ helpers

    def _check_changeable(self, target: MessageDoc, window: timedelta, what: str) -> None:
        """A message that is not dead, not revoked, and sent less than `window` ago (or not
        sent yet: the action waits for it in the chat's order)."""
        if target.status == MessageStatus.DEAD:
            raise Conflict(
                f"message {target.id} is dead: WhatsApp never had it, there is nothing to {what}",
                code="message_dead",
                field="message_id",
            )
        if target.revoked is not None:
            raise Conflict(
                f"message {target.id} was revoked", code="message_revoked", field="message_id"
            )
        sent_at = target.status_times.get(MessageStatus.SENT.value)
        if sent_at is None and target.status in ON_WHATSAPP:
            sent_at = target.updated_at
        left = window_left(window, sent_at, self._clock.now())
        if left is not None and left <= timedelta(0):
            raise Conflict(
                f"message {target.id} was sent at {_iso(sent_at)}: WhatsApp allows {what} for "
                f"{_span(window)} after sending",
                code=f"{what}_window_expired",
                field="message_id",
            )

    def _queue_on(
        self,
        tenant: TenantDoc,
        target: MessageDoc,
        content: StoredContent,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Accepted:
        return self._queue(
            tenant,
            target.session_id,
            target.shard,
            target.to,
            content,
            idempotency_key,
            fingerprint,
        )

    def _queue(
        self,
        tenant: TenantDoc,
        session_id: str,
        shard: int,
        to: str,
        content: StoredContent,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Accepted:
        """The action as a message of the chat `to` (as written: the chat's order is per `to`)."""
        now = self._clock.now()
        action_id = ids.new_message_id()
        doc = MessageDoc(
            id=action_id,
            tenant_id=tenant.id,
            session_id=session_id,
            shard=shard,
            to=to,
            content=content,
            priority=ACTION_PRIORITY,
            idempotency_key=idempotency_key,
            wa_id=ids.whatsapp_message_id(action_id),
            status_times={MessageStatus.ACCEPTED.value: now},
            created_at=now,
            updated_at=now,
        )
        return self._outbox.submit(doc, idempotency_key=idempotency_key, fingerprint=fingerprint)


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at is not None else "?"


def _span(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"
