"""Carrying out a queued chat action (wagate/services/chat_actions.py) once the send pipeline has
admitted, ordered, paced and claimed it like any send (runner/sending.py): the last checks
(the edit or revoke window, a target that died, a presence gone stale), the engine's `act`, and
what a sent edit or revoke leaves on the message it changed (`edits`, `revoked`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runner.context import ShardContext
from runner.store_deadlines import STORE_READ_TIMEOUT_S, within
from runner.supervisor import SessionSupervisor
from wagate.contracts import (
    EditContent,
    EditRecord,
    MessageDoc,
    PresenceContent,
    ReadContent,
    RevokeContent,
    RevokeRecord,
)
from wagate.domain.chat_actions import (
    EDIT_WINDOW,
    PRESENCE_TTL,
    REVOKE_WINDOW,
    ChatAction,
    EditText,
    MarkRead,
    Revoke,
    SetPresence,
    window_left,
)
from wagate.domain.events import MessageAck
from wagate.domain.messages import ON_WHATSAPP, MessageStatus
from wagate.errors import DependencyUnavailable, PermanentSendError, TransientSendError

ACTIONS = (ReadContent, PresenceContent, EditContent, RevokeContent)


class ActionDelivery:
    def __init__(self, ctx: ShardContext) -> None:
        self._ctx = ctx

    async def transmit(self, doc: MessageDoc, supervisor: SessionSupervisor) -> MessageAck:
        """Send the message, or carry out the action, with the message's WhatsApp id."""
        if not isinstance(doc.content, ACTIONS):
            content = doc.content.model_dump(mode="json", exclude={"type"}, exclude_none=True)
            return await supervisor.send(doc.wa_id, doc.to, doc.content.type, content)
        return await supervisor.act(doc.wa_id, doc.to, await self.command(doc))

    async def command(self, doc: MessageDoc) -> ChatAction:
        """The engine's command for a queued action, or a PermanentSendError (the action goes
        dead with its code) when WhatsApp must not get it any more."""
        content = doc.content
        now = self._ctx.clock.now()
        if isinstance(content, PresenceContent):
            if now - doc.created_at > PRESENCE_TTL:
                raise PermanentSendError(
                    f"a presence asked for at {doc.created_at.isoformat()} is stale: not sent "
                    f"after {PRESENCE_TTL.total_seconds():g} s",
                    code="presence_expired",
                )
            return SetPresence(content.state)
        if isinstance(content, ReadContent):
            return MarkRead(content.chat_jid, tuple(content.wa_ids), content.sender)
        assert isinstance(content, EditContent | RevokeContent)
        target = await self._target(content.message_id)
        what, window = (
            ("edit", EDIT_WINDOW)
            if isinstance(content, EditContent)
            else (
                "revoke",
                REVOKE_WINDOW,
            )
        )
        if target.status == MessageStatus.DEAD:
            raise PermanentSendError(
                f"message {target.id} is dead: nothing to {what}", code="message_dead"
            )
        if target.revoked is not None and target.revoked.action_id != doc.id:
            raise PermanentSendError(f"message {target.id} was revoked", code="message_revoked")
        if target.status not in ON_WHATSAPP:  # the chat's order normally rules this out
            raise TransientSendError(f"message {target.id} is not sent yet", retry_after=2)
        left = window_left(window, target.status_times.get(MessageStatus.SENT.value), now)
        if left is not None and left.total_seconds() <= 0:
            raise PermanentSendError(
                f"message {target.id} was sent more than {window} ago: past WhatsApp's {what} "
                "window",
                code=f"{what}_window_expired",
            )
        if isinstance(content, EditContent):
            return EditText(target.wa_id, content.body)
        return Revoke(target.wa_id)

    async def _target(self, message_id: str) -> MessageDoc:
        ctx = self._ctx
        try:
            target = await within(STORE_READ_TIMEOUT_S, ctx.io(ctx.messages.get, message_id))
        except DependencyUnavailable as e:
            raise TransientSendError(f"cannot read message {message_id}: {e.message}") from e
        if target is None:
            raise PermanentSendError(f"message {message_id} is gone", code="message_gone")
        return target


def target_patches(doc: MessageDoc, acked_at: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    """What a sent edit or revoke writes on the message it changed, beside its own `sent`."""
    content = doc.content
    if isinstance(content, EditContent):
        edit = EditRecord(action_id=doc.id, text=content.body, at=acked_at)
        return [("messages", content.message_id, {f"edits.{doc.id}": edit.model_dump()})]
    if isinstance(content, RevokeContent):
        revoked = RevokeRecord(action_id=doc.id, at=acked_at)
        return [("messages", content.message_id, {"revoked": revoked.model_dump()})]
    return []
