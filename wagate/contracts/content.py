"""The content of a message (text, media, location, contact, reaction), as the API takes it and
the store and the tasks carry it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

MAX_MEDIA_BYTES = 16 * 1024 * 1024


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply_to: str | None = Field(None, description="wagate or WhatsApp id of the quoted message")


class TextContent(_Content):
    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=65_536)


class MediaContent(_Content):
    type: Literal["image", "document", "audio", "video"]
    url: HttpUrl | None = None
    media_id: str | None = Field(
        None, pattern=r"^med_[0-9A-HJKMNP-TV-Z]{26}$", description="id from POST /v1/media"
    )
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = Field(None, max_length=255)
    mime_type: str | None = Field(None, max_length=127)

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


MessageContent = Annotated[
    TextContent | MediaContent | LocationContent | ContactContent | ReactionContent,
    Field(discriminator="type"),
]
