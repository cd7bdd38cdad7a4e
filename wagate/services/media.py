"""Media uploads: up to 16 MB per file, kept in the media bucket under the tenant's prefix and
sent later by id. Only the uploading tenant can reference a media id."""

from __future__ import annotations

import hashlib

from wagate.contracts import MAX_MEDIA_BYTES, MediaView
from wagate.domain.ids import new_id
from wagate.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from wagate.ports import BlobStore

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


def object_name(tenant_id: str, media_id: str) -> str:
    return f"media/{tenant_id}/{media_id}"


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

    def check(self, tenant_id: str, media_id: str) -> None:
        """NotFound unless this tenant uploaded `media_id` (another tenant's id is unknown)."""
        try:
            self._blobs.head(object_name(tenant_id, media_id))
        except NotFound:
            raise NotFound(f"media {media_id} not found", field="content.media_id") from None
