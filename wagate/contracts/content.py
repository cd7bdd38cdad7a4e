"""The content of a message (text with mentions and link previews, media, voice notes, stickers,
location, contact, reaction, poll), as the API takes it and the store and the tasks carry it."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_MEDIA_BYTES = 16 * 1024 * 1024
MAX_MENTIONS = 50
MENTION_PATTERN = r"^(\+?[1-9][0-9]{6,15}|[0-9]{6,20}@(s\.whatsapp\.net|lid))$"
# WhatsApp takes a voice note only as Ogg Opus and a sticker only as WebP.
KIND_MIME_TYPES = {"voice": ("audio/ogg",), "sticker": ("image/webp",)}


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply_to: str | None = Field(None, description="wagate or WhatsApp id of the quoted message")


def mention_user(mention: str) -> str:
    """What the body writes after `@` for a mention: the number's digits or the LID's user."""
    return mention.partition("@")[0].removeprefix("+")


class TextContent(_Content):
    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=65_536)
    mentions: list[Annotated[str, Field(pattern=MENTION_PATTERN)]] | None = Field(
        None,
        max_length=MAX_MENTIONS,
        description="people mentioned (E.164 numbers, …@s.whatsapp.net or …@lid); the body "
        "must carry each as @<number> (or @<lid user>), where WhatsApp shows the name",
    )
    link_preview: bool = Field(
        False,
        description="attach a preview (title, description, thumbnail) of the first http(s) URL "
        "in the body, fetched by the runner through the egress guard; a failed fetch sends the "
        "text without one",
    )

    @field_validator("mentions")
    @classmethod
    def _mentions_in_body(
        cls, mentions: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        if not mentions:
            return mentions
        users = [mention_user(m) for m in mentions]
        if len(set(users)) != len(users):
            raise ValueError("mentions must not repeat a person")
        body = info.data.get("body", "")
        for user in users:
            if not re.search(rf"@{user}(?![0-9])", body):
                raise ValueError(f"the body must contain @{user} for each mention")
        return mentions


class MediaContent(_Content):
    """A file by URL or upload. `voice` is an audio message played as a voice note (PTT: Ogg
    Opus); `sticker` is a WebP image shown as a sticker. Neither takes a caption or a filename."""

    type: Literal["image", "document", "audio", "video", "voice", "sticker"]
    url: HttpUrl | None = None
    media_id: str | None = Field(
        None, pattern=r"^med_[0-9A-HJKMNP-TV-Z]{26}$", description="id from POST /v1/media"
    )
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = Field(None, max_length=255)
    mime_type: str | None = Field(None, max_length=127)

    @field_validator("caption", "filename")
    @classmethod
    def _not_for_voice_or_sticker(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if value is not None and kind in KIND_MIME_TYPES:
            raise ValueError(f"a {kind} has no {info.field_name}")
        return value

    @field_validator("mime_type")
    @classmethod
    def _voice_is_ogg_sticker_is_webp(cls, value: str | None, info: ValidationInfo) -> str | None:
        allowed = KIND_MIME_TYPES.get(str(info.data.get("type")))
        if value is not None and allowed and value.split(";")[0].strip().lower() not in allowed:
            raise ValueError(f"a {info.data.get('type')} must be {' or '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MediaContent:
        if (self.url is None) == (self.media_id is None):
            raise ValueError("give exactly one of url or media_id")
        return self


class LocationContent(_Content):
    type: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(None, max_length=255)
    address: str | None = Field(None, max_length=1024)


class ContactContent(_Content):
    type: Literal["contact"] = "contact"
    name: str = Field(min_length=1, max_length=255)
    phone: str = Field(pattern=r"^\+?[0-9]{6,16}$")


class ReactionContent(_Content):
    type: Literal["reaction"] = "reaction"
    message_id: str = Field(min_length=1, max_length=128)
    emoji: str = Field(max_length=16, description="empty string removes the reaction")


def poll_option_hash(name: str) -> str:
    """How a WhatsApp vote names a poll option: the SHA-256 of its name (here in hex)."""
    return hashlib.sha256(name.encode()).hexdigest()


class PollContent(_Content):
    """A poll: one question, 2 to 12 distinct options; `selectable_count` 1 is single select,
    more lets a voter pick up to that many. Votes arrive as `poll.vote` events."""

    type: Literal["poll"] = "poll"
    question: str = Field(min_length=1, max_length=255)
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=2, max_length=12
    )
    selectable_count: int = Field(1, ge=1, le=12, description="1 = single select")

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len({o.strip() for o in options}) != len(options):
            raise ValueError("poll options must be distinct")
        return options

    @field_validator("selectable_count")
    @classmethod
    def _at_most_the_options(cls, count: int, info: ValidationInfo) -> int:
        options = info.data.get("options")
        if options is not None and count > len(options):
            raise ValueError("selectable_count must not exceed the number of options")
        return count


MessageContent = Annotated[
    TextContent | MediaContent | LocationContent | ContactContent | ReactionContent | PollContent,
    Field(discriminator="type"),
]
