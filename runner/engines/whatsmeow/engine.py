"""The whatsmeow engine (wagate.ports.WhatsAppEngine): WhatsApp's multi-device protocol in Go
(tulir/whatsmeow) through neonize's Python binding, one host process per connected session;
`WAGATE_ENGINE=whatsmeow` selects it. This side never imports neonize, so the runner itself
never loads the Go library (why a process per socket: runner.engines.whatsmeow.host).
"""

from __future__ import annotations

import re
import sys
from dataclasses import KW_ONLY, InitVar, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

# Re-exported (`as`) for runner/__main__.py and runner/engines/baileys/engine.py, which import
# them from here; they live in runner.engines.outgoing.
from runner.engines.outgoing import MEDIA_KINDS as MEDIA_KINDS
from runner.engines.outgoing import BucketMedia as BucketMedia
from runner.engines.outgoing import MediaSource as MediaSource
from runner.engines.outgoing import check_recipient
from runner.engines.outgoing import fetch_media as fetch_media
from runner.engines.whatsmeow.connection import WhatsmeowConnection
from wagate.adapters import egress
from wagate.domain.events import EngineEvent

CONNECT_TIMEOUT_S = 60.0  # SPEC §4
QUERY_TIMEOUT_S = 60.0
CAPTURE_INTERVAL_S = 2.0
HOST_MODULE = "runner.engines.whatsmeow.host"


@dataclass(eq=False)
class WhatsmeowEngine:
    """Opens whatsmeow connections whose device stores live in `store_dir` (one SQLite file per
    session, readable by the runner's user only). `keep_store=False` (persistence mode `cloud`)
    deletes a session's plaintext store when its connection closes."""

    name: ClassVar[str] = "whatsmeow"

    store_dir: Path
    _: KW_ONLY
    media: MediaSource | None = None
    keep_store: bool = True
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    query_timeout_s: float = QUERY_TIMEOUT_S
    capture_interval_s: float = CAPTURE_INTERVAL_S
    python: str = sys.executable
    log_level: str = "WARNING"
    # whatsmeow runs its own keep-alive (20-30 s pings, KeepAliveTimeout after failures);
    # the option exists for the contract suite's signature and is not configurable here.
    keepalive_s: InitVar[float | None] = None
    proxy: str | None = None  # WhatsApp through a proxy (socks5:// or http://), if any
    host_module: str = HOST_MODULE
    # Media URLs are fetched through the egress guard; without one, the strictest policy.
    egress_guard: egress.EgressGuard = field(default_factory=egress.EgressGuard.strictest)
    # Per session: the digest of the state last handed to the supervisor. If it hands the
    # same state back on reconnect, the file on disk is that state or newer: keep the file.
    emitted: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self, keepalive_s: float | None) -> None:
        del keepalive_s

    def store_path(self, session_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)
        return self.store_dir / f"{safe}.db"

    def open(self, session_id: str, auth_state: bytes | None) -> WhatsmeowConnection:
        return WhatsmeowConnection(self, session_id, auth_state)

    async def aclose(self) -> None:
        """Nothing is pooled: each media download has its own guarded client."""

    async def fetch_media(self, session_id: str, content: dict[str, Any], kind: str = "") -> bytes:
        """The bytes of a media message: from the media bucket (media_id) or its URL."""
        return await fetch_media(self.media, self.egress_guard, session_id, content, kind)


class _EventStream:
    """Only for runner.engines.baileys.engine until it builds its stream with
    runner.engines.event_stream.EventQueue; then this goes."""

    __slots__ = ("_conn",)

    def __init__(self, conn: WhatsmeowConnection) -> None:
        self._conn: Any = conn

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> EngineEvent:
        queue = self._conn._queue
        if self._conn._closed and queue.empty():
            raise StopAsyncIteration
        item: EngineEvent | None = await queue.get()
        if item is None:
            queue.put_nowait(None)
            raise StopAsyncIteration
        return item


_check_recipient = check_recipient  # as above, for runner.engines.baileys.engine
