"""What both real engines (baileys, whatsmeow) do to a message before it goes to their library:
check the recipient's address, and fetch a media message's bytes — from the media bucket
(`media_id`, written by POST /v1/media) or from its URL through the egress guard — checking that
a voice note is Ogg and a sticker WebP (WhatsApp shows nothing for anything else).

The simulator takes content as it is; the real engines must hand the library a file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from wagate.adapters import egress
from wagate.contracts import MAX_MEDIA_BYTES, SessionDoc
from wagate.errors import NotFound, PermanentSendError, TransientSendError, WagateError
from wagate.ports import BlobStore, Repository
from wagate.services.media import object_name

MEDIA_KINDS = ("image", "document", "audio", "video", "voice", "sticker")


def _is_ogg(data: bytes) -> bool:
    return data[:4] == b"OggS"  # an Ogg page (RFC 3533)


def _is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


# The file formats WhatsApp requires of some kinds, by their magic bytes.
_FORMATS: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "voice": ("Ogg (Opus)", _is_ogg),
    "sticker": ("WebP", _is_webp),
}


class MediaSource(Protocol):
    """Reads an uploaded file (POST /v1/media) of a session's tenant: blocking, called from a
    worker thread. Raises NotFound if there is no such file."""

    def __call__(self, session_id: str, media_id: str) -> bytes: ...


class BucketMedia:
    """MediaSource over the media bucket (`media/<tenant>/<media id>`, written by POST /v1/media);
    the session's tenant is read once from its document."""

    def __init__(self, blobs: BlobStore, sessions: Repository[SessionDoc]) -> None:
        self._blobs = blobs
        self._sessions = sessions
        self._tenants: dict[str, str] = {}

    def __call__(self, session_id: str, media_id: str) -> bytes:
        tenant = self._tenants.get(session_id)
        if tenant is None:
            doc = self._sessions.get(session_id)
            if doc is None:
                raise NotFound(f"session {session_id} not found")
            tenant = self._tenants[session_id] = doc.tenant_id
        return self._blobs.get(object_name(tenant, media_id)).data


async def fetch_media(
    media: MediaSource | None,
    guard: egress.EgressGuard,
    session_id: str,
    content: dict[str, Any],
    kind: str = "",
) -> bytes:
    """The bytes of a media message: from the media bucket (media_id) or its URL, fetched through
    the egress guard; a voice note or a sticker must be of WhatsApp's format (check_format)."""
    media_id = content.get("media_id")
    if media_id:
        if media is None:
            raise PermanentSendError(
                "this runner has no media source configured for media_id", field="content"
            )
        try:
            data = await asyncio.to_thread(media, session_id, str(media_id))
        except NotFound as e:
            raise PermanentSendError(f"media {media_id} not found", field="content") from e
        except WagateError as e:
            raise TransientSendError(f"cannot read media {media_id}: {e.message}") from e
    else:
        url = str(content.get("url") or "")
        if not url:
            raise PermanentSendError("a media message needs url or media_id", field="content")
        data = await egress.fetch_media(url, guard)
    if not data:
        raise PermanentSendError("the media file is empty", field="content")
    if len(data) > MAX_MEDIA_BYTES:
        raise PermanentSendError("the media file is larger than 16 MB", field="content")
    check_format(kind, data)
    return data


def check_format(kind: str, data: bytes) -> None:
    """A voice note must be Ogg and a sticker WebP: a permanent error otherwise."""
    required = _FORMATS.get(kind)
    if required is not None and not required[1](data):
        raise PermanentSendError(f"a {kind} must be a {required[0]} file", field="content")


def check_recipient(to: str) -> None:
    """A phone number in international format, or a user, group or LID address; anything else
    is a permanent error before the library sees it."""
    if "@" in to:
        user, _, server = to.partition("@")
        if user and server in ("s.whatsapp.net", "g.us", "lid"):
            return
    else:
        digits = to.removeprefix("+")
        if digits.isdigit() and 6 <= len(digits) <= 16:
            return
    raise PermanentSendError(f"not a WhatsApp recipient: {to!r}", field="to")
