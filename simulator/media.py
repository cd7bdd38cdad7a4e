"""The simulator's media host: the files of inbound media messages, served at `GET /media/{token}`
as WhatsApp's media servers serve them to a linked device (simulator/PROTOCOL.md, "Media"), with
the faults a download can meet: a few 503s first, or a file that is gone (404)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MEDIA_PATH = "/media/{token}"


@dataclass
class MediaFile:
    data: bytes
    mime_type: str
    failures_left: int = 0  # answer 503 this many times before serving
    gone: bool = False  # 404, as a file the server no longer has


class MediaShelf:
    """Every file an inbound message carries, by an unguessable token."""

    def __init__(self) -> None:
        self.files: dict[str, MediaFile] = {}
        self.downloads = 0  # successful downloads (a test counts redownloads with it)

    def put(self, file: MediaFile, filename: str | None = None) -> dict[str, Any]:
        """Shelve a file; returns the `media` field of the message frame that names it."""
        token = secrets.token_hex(16)
        self.files[token] = file
        described: dict[str, Any] = {
            "path": MEDIA_PATH.format(token=token),
            "mime_type": file.mime_type,
            "size": len(file.data),
            "sha256": hashlib.sha256(file.data).hexdigest(),
        }
        if filename:
            described["filename"] = filename
        return described

    def clear(self) -> None:
        self.files.clear()
        self.downloads = 0


SHELF = web.AppKey("media_shelf", MediaShelf)


async def serve(request: web.Request) -> web.Response:
    shelf = request.app[SHELF]
    file = shelf.files.get(request.match_info["token"])
    if file is None or file.gone:
        return web.json_response({"error": "no such media file"}, status=404)
    if file.failures_left > 0:
        file.failures_left -= 1
        return web.json_response({"error": "media server busy"}, status=503)
    shelf.downloads += 1
    return web.Response(body=file.data, headers={"Content-Type": file.mime_type})


def add_routes(app: web.Application) -> None:
    app[SHELF] = MediaShelf()
    app.router.add_get(MEDIA_PATH, serve)
