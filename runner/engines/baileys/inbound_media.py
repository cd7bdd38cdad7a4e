"""Received files on the Baileys engine: the `media` reference of the host's inbound event becomes
an InboundMedia whose download runs in the session's worker (host.mjs op `download`, media.mjs:
from the configured media host, MAC and hashes checked, decrypted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from runner.engines.whatsmeow import wire
from wagate.domain.events import InboundMedia
from wagate.errors import (
    DependencyUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    WagateError,
)

DEFAULT_MEDIA_URL = "https://mmg.whatsapp.net"  # WhatsApp's media host (media.mjs)
DOWNLOAD_TIMEOUT_S = 90.0  # the host's own fetch gives up after 60 s
_ERRORS: dict[str, type[WagateError]] = {
    "not_found": NotFound,
    "payload_too_large": PayloadTooLarge,
    "invalid": ValidationFailed,
}

Request = Callable[[dict[str, Any], float], Awaitable[dict[str, Any]]]


def inbound_media(ref: Any, request: Request, media_url: str) -> InboundMedia | None:
    """The InboundMedia of an inbound event's `media` (None without one). `request` sends an op
    to the worker that holds the session."""
    if not isinstance(ref, dict) or not ref.get("direct_path"):
        return None

    async def fetch(limit: int) -> bytes:
        reply = await request(
            {"op": "download", "media": ref, "media_url": media_url, "limit": limit},
            DOWNLOAD_TIMEOUT_S,
        )
        if reply.get("ok"):
            return wire.unb64(str(reply["data_b64"]))
        error = reply.get("error") or {}
        kind = _ERRORS.get(str(error.get("code")), DependencyUnavailable)
        raise kind(str(error.get("message", "the download failed")))

    size = ref.get("size")
    filename = ref.get("filename")
    return InboundMedia(
        mime_type=str(ref.get("mime_type") or "application/octet-stream"),
        fetch=fetch,
        size=size if isinstance(size, int) and size > 0 else None,
        filename=str(filename) if filename else None,
    )
