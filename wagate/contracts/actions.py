"""Chat actions on the wire (docs/messaging.md, "Chat actions"): the API bodies, the content a
queued action carries in its message document (`MessageDoc.content`, beside the message kinds
of content.py), and what a sent edit or revoke leaves on the message it changed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from wagate.contracts.base import ApiModel
from wagate.contracts.content import MessageContent
from wagate.domain.chat_actions import PresenceState

MAX_EDIT_LENGTH = 4096  # WhatsApp's limit for a text it lets its users edit


# ---------------------------------------------------------------- API bodies


class MarkReadRequest(ApiModel):
    """POST /v1/sessions/{session}/chats/{chat}:read"""

    up_to: str = Field(
        min_length=1,
        max_length=128,
        # A letter or digit first: never "." or "..", which no stored document can be named.
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="WhatsApp id of a received message of this chat (the `id` of its "
        "message.received event): it and the earlier received ones are marked read",
        examples=["3EB0C431A1F8E2D4B6"],
    )


class PresenceRequest(ApiModel):
    """POST /v1/sessions/{session}/chats/{chat}:presence"""

    state: PresenceState = Field(description="typing | recording (a voice note) | paused")


class EditMessageRequest(ApiModel):
    """PATCH /v1/messages/{id}"""

    text: str = Field(min_length=1, max_length=MAX_EDIT_LENGTH, description="The new text")


# ---------------------------------------------------------------- stored content


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadContent(_Action):
    type: Literal["read"] = "read"
    up_to: str = Field(description="The received message the tenant named")
    chat_jid: str = Field(description="The chat as WhatsApp named it in the received message")
    wa_ids: list[str] = Field(description="The received messages marked read, oldest first")
    sender: str | None = Field(None, description="Their author, in a group chat")


class PresenceContent(_Action):
    type: Literal["presence"] = "presence"
    state: PresenceState


class EditContent(_Action):
    type: Literal["edit"] = "edit"
    message_id: str = Field(description="The wagate id of the edited message")
    body: str = Field(min_length=1, max_length=MAX_EDIT_LENGTH)


class RevokeContent(_Action):
    type: Literal["revoke"] = "revoke"
    message_id: str = Field(description="The wagate id of the revoked message")


ActionContent = Annotated[
    ReadContent | PresenceContent | EditContent | RevokeContent, Field(discriminator="type")
]


# ---------------------------------------------------------------- left on the changed message


class EditRecord(BaseModel):
    """One edit WhatsApp took (the edit action was sent)."""

    action_id: str
    text: str
    at: datetime


class RevokeRecord(BaseModel):
    action_id: str
    at: datetime


# What a message document (and its send task's snapshot) carries: a message, or a chat action
# queued behind the chat's earlier sends.
StoredContent = MessageContent | ActionContent
