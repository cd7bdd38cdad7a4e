"""Media files of a tenant, in the media bucket under the tenant's prefix: uploads (up to 16 MB,
sent later by id) and received files (stored by the runner, runner/inbound_media.py). One layout
for both, so GET /v1/media/{id} serves either and a received file can be sent on by its id. Only
the tenant that owns a media id can reference it."""

from __future__ import annotations

import hashlib
import re

from wagate.contracts import MAX_MEDIA_BYTES, MediaView
from wagate.contracts.content import KIND_MIME_TYPES
from wagate.domain.ids import new_id
from wagate.errors import (
    NotFound,
    PayloadTooLarge,
    StaleGeneration,
    UnsupportedMediaType,
    ValidationFailed,
)
from wagate.ports import BlobInfo, BlobStore

# What WhatsApp delivers as media, as Meta's Cloud API lists it (docs/messaging.md, "Media
# types"); anything else is refused with 415 before it is stored.
MEDIA_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",  # stickers
        "video/mp4",
        "video/3gpp",
        "audio/ogg",  # voice notes (opus)
        "audio/mpeg",
        "audio/aac",
        "audio/mp4",
        "audio/amr",
        "text/plain",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)


MEDIA_ID = re.compile(r"^med_[0-9A-HJKMNP-TV-Z]{26}$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def object_name(tenant_id: str, media_id: str) -> str:
    return f"media/{tenant_id}/{media_id}"


def received_type(declared: str) -> str:
    """A received file's media type as the sender's app declared it, without parameters
    (`audio/ogg; codecs=opus` → `audio/ogg`); anything malformed is octet-stream. WhatsApp
    delivers documents of any type, so this is not MEDIA_TYPES."""
    media_type = declared.split(";")[0].strip().lower()
    return media_type if _MIME.match(media_type) else "application/octet-stream"


def _view(media_id: str, info: BlobInfo) -> MediaView:
    return MediaView(
        id=media_id,
        content_type=info.metadata.get("content_type", "application/octet-stream"),
        size=info.size,
        sha256=info.metadata.get("sha256", ""),
    )


class Media:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def upload(self, tenant_id: str, data: bytes, content_type: str) -> MediaView:
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in MEDIA_TYPES:
            raise UnsupportedMediaType(
                f"WhatsApp cannot send {media_type or 'a body without a Content-Type'}; send "
                "one of: " + ", ".join(sorted(MEDIA_TYPES)),
                field="Content-Type",
            )
        if not data:
            raise ValidationFailed("the upload is empty", field="body")
        if len(data) > MAX_MEDIA_BYTES:
            raise PayloadTooLarge("media files are at most 16 MB", field="body")
        media_id = new_id("med")
        digest = hashlib.sha256(data).hexdigest()
        self._blobs.put(
            object_name(tenant_id, media_id),
            data,
            if_generation_match=0,
            metadata={"sha256": digest, "content_type": media_type},
            content_type=media_type,
        )
        return MediaView(id=media_id, content_type=media_type, size=len(data), sha256=digest)

    def store_received(
        self,
        tenant_id: str,
        media_id: str,
        data: bytes,
        content_type: str,
        *,
        session_id: str,
        wa_id: str,
    ) -> MediaView:
        """A received message's file under its derived id (domain.ids.inbound_media_id). Stored
        at most once: a redelivered message's second store finds the first and keeps it."""
        media_type = received_type(content_type)
        digest = hashlib.sha256(data).hexdigest()
        name = object_name(tenant_id, media_id)
        metadata = {
            "sha256": digest,
            "content_type": media_type,
            "direction": "in",
            "session_id": session_id,
            "wa_id": wa_id,
        }
        try:
            self._blobs.put(
                name, data, if_generation_match=0, metadata=metadata, content_type=media_type
            )
        except StaleGeneration:
            return _view(media_id, self._blobs.head(name))
        return MediaView(id=media_id, content_type=media_type, size=len(data), sha256=digest)

    def find(self, tenant_id: str, media_id: str) -> MediaView | None:
        """What is stored under this tenant's `media_id`, or None."""
        try:
            return _view(media_id, self._blobs.head(object_name(tenant_id, media_id)))
        except NotFound:
            return None

    def read(self, tenant_id: str, media_id: str) -> tuple[MediaView, bytes]:
        """The file and what is known of it; NotFound for an id of another tenant, too."""
        if not MEDIA_ID.match(media_id):
            raise NotFound(f"media {media_id[:64]} not found", field="media_id")
        name = object_name(tenant_id, media_id)
        try:
            # The facts live in the object's metadata, which a download does not return.
            info = self._blobs.head(name)
            blob = self._blobs.get(name, generation=info.generation)
        except NotFound:
            raise NotFound(f"media {media_id} not found", field="media_id") from None
        return _view(media_id, info), blob.data

    def check(self, tenant_id: str, media_id: str, kind: str | None = None) -> None:
        """NotFound unless this tenant uploaded `media_id` (another tenant's id is unknown);
        for a voice note or a sticker, ValidationFailed unless the file is of its format."""
        try:
            info = self._blobs.head(object_name(tenant_id, media_id))
        except NotFound:
            raise NotFound(f"media {media_id} not found", field="content.media_id") from None
        allowed = KIND_MIME_TYPES.get(kind or "")
        media_type = info.metadata.get("content_type", "")
        if allowed and media_type not in allowed:
            raise ValidationFailed(
                f"a {kind} must be {' or '.join(allowed)}; media {media_id} is {media_type}",
                field="content.media_id",
            )
