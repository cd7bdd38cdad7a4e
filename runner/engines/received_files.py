"""Received files on the real engines: the `media` reference an engine's process puts on an
inbound event becomes an InboundMedia whose download runs in that process (op `download`): the
Baileys worker (host.mjs, media.mjs: from the configured media host, MAC and hashes checked,
decrypted) or the whatsmeow host (neonize's download_any). Either answers `data_b64`, or an
`error` whose `code` says whether another attempt could help."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from wagate.domain.events import InboundMedia
from wagate.errors import (
    DependencyUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    WagateError,
)

DOWNLOAD_TIMEOUT_S = 90.0  # the processes' own downloads give up after 60 s
_ERRORS: dict[str, type[WagateError]] = {
    "not_found": NotFound,
    "payload_too_large": PayloadTooLarge,
    "invalid": ValidationFailed,
}

Request = Callable[[dict[str, Any], float], Awaitable[dict[str, Any]]]


def inbound_media(ref: Any, request: Request, **op: Any) -> InboundMedia | None:
    """The InboundMedia of an inbound event's `media` (None without one). `request` sends an op
    to the process that holds the session; `op` adds fields to the download op."""
    if not isinstance(ref, dict) or not ref:
        return None

    async def fetch(limit: int) -> bytes:
        reply = await request(
            {"op": "download", "media": ref, "limit": limit, **op}, DOWNLOAD_TIMEOUT_S
        )
        if isinstance(reply.get("data_b64"), str):
            return base64.b64decode(reply["data_b64"])
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
