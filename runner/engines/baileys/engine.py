"""The Baileys engine (wagate.ports.WhatsAppEngine): WhatsApp sockets held by a pool of Node
worker processes (`host.mjs`), each holding up to `sessions_per_worker` of them.

The pipe is one JSON object per line; events use the whatsmeow host's schema
(`runner.engines.whatsmeow.wire.decode_event`), so both real engines share one definition of every
event field; an inbound event adds the sender's phone and LID forms, which only Baileys reports
(the host resolves them from the session's own LID mapping). A worker that dies ends only its own
sockets, each with Disconnected(500); the supervisor's reconnect opens them again on a live (or
new) worker from the auth state they last emitted, which is the state in their backup: no QR.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.engines.baileys.queries import BaileysDirectory
from runner.engines.chat_actions import action_request
from runner.engines.event_stream import EventQueue, new_waiter, resolve_waiter
from runner.engines.link_preview import with_link_preview
from runner.engines.outgoing import MEDIA_KINDS, MediaSource, check_recipient, fetch_media
from runner.engines.received_files import inbound_media
from runner.engines.whatsmeow import wire
from wagate.adapters import egress
from wagate.domain.chat_actions import ChatAction
from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    EngineEvent,
    InboundMessage,
    MessageAck,
    PairingCode,
    QrCode,
)
from wagate.domain.sessions import DisconnectReason
from wagate.errors import (
    DependencyUnavailable,
    PermanentSendError,
    TransientSendError,
    WagateError,
)
from wagate.logs import get_logger

log = get_logger("wagate.runner.baileys")

HOST = Path(__file__).with_name("host.mjs")
DEFAULT_MEDIA_URL = "https://mmg.whatsapp.net"  # WhatsApp's media host (media.mjs)
ROOT = Path(__file__).resolve().parents[3]  # package.json and node_modules live here
CONNECT_TIMEOUT_S = 60.0  # SPEC §4
REQUEST_TIMEOUT_S = 60.0
RATE_LIMIT_RETRY_S = 60.0
# Small young generation: idle sockets allocate little, and each semi-space page is resident.
NODE_FLAGS = ("--max-semi-space-size=2",)
HOST_ENV_KEEP = ("PATH", "HOME", "LANG", "TZ", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS")


class Worker:
    """One Node process and the connections it holds."""

    def __init__(self, engine: BaileysEngine, index: int) -> None:
        self.engine = engine
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.conns: dict[str, BaileysConnection] = {}
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k in HOST_ENV_KEEP}  # none of our secrets
        self.proc = await asyncio.create_subprocess_exec(
            self.engine.node,
            *NODE_FLAGS,
            str(HOST),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
            env=env,
            limit=64 * 1024 * 1024,
        )
        self._tasks = [
            asyncio.create_task(self._read(self.proc)),
            asyncio.create_task(self._read_stderr(self.proc)),
        ]

    async def request(
        self, frame: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
    ) -> dict[str, Any]:
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise TransientSendError("the Baileys worker is not running")
        self._next += 1
        req = self._next
        future: asyncio.Future[dict[str, Any]] = new_waiter()
        self._pending[req] = future
        try:
            self.proc.stdin.write(json.dumps({**frame, "req": req}).encode() + b"\n")
            await self.proc.stdin.drain()
            return await asyncio.wait_for(future, timeout)
        except (ConnectionError, BrokenPipeError) as e:
            raise TransientSendError("the Baileys worker is gone") from e
        except TimeoutError as e:
            raise TransientSendError(f"no reply from the Baileys worker to {frame['op']}") from e
        finally:
            self._pending.pop(req, None)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                frame = wire.unpack(line)
                if "re" in frame:
                    future = self._pending.get(int(frame["re"]))
                    if future and not future.done():
                        future.set_result(frame)
                elif (conn := self.conns.get(str(frame.get("sid")))) is not None:
                    conn._on_frame(frame)
            except (wire.FrameError, KeyError, ValueError, TypeError) as e:
                log.warning("bad frame from the Baileys worker", error=str(e)[:200])
        await proc.wait()
        log.warning(
            "Baileys worker exited",
            worker=self.index,
            returncode=proc.returncode,
            sessions=len(self.conns),
            last_stderr=self._stderr[-1] if self._stderr else "",
        )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TransientSendError("the Baileys worker exited"))
        for conn in list(self.conns.values()):
            conn._worker_died()
        self.conns.clear()

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            log.debug("baileys", worker=self.index, line=text[:500])

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()


@dataclass(eq=False)
class BaileysEngine:
    """Sessions are placed on the first worker with room; a worker is started when none has."""

    url: str
    _: KW_ONLY
    sessions_per_worker: int = 50
    keepalive_s: float = 30.0
    sync_history: bool = True
    node: str = "node"
    media: MediaSource | None = None
    media_url: str = DEFAULT_MEDIA_URL  # where received files are downloaded (a fake in tests)
    # Media URLs and link previews are fetched through the egress guard; without one, the
    # strictest policy.
    egress_guard: egress.EgressGuard = field(default_factory=egress.EgressGuard.strictest)
    workers: list[Worker] = field(default_factory=list, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _started: int = field(default=0, init=False)
    _opened: int = field(default=0, init=False)

    def connection_id(self, session_id: str) -> str:
        """Two connections of one session (a takeover) are two sockets on the workers."""
        self._opened += 1
        return f"{session_id}#{self._opened}"

    def open(self, session_id: str, auth_state: bytes | None) -> BaileysConnection:
        return BaileysConnection(self, session_id, auth_state)

    async def place(self, conn: BaileysConnection) -> Worker:
        async with self._lock:
            self.workers = [w for w in self.workers if w.alive]
            for worker in self.workers:
                if len(worker.conns) < self.sessions_per_worker:
                    break
            else:
                self._started += 1
                worker = Worker(self, self._started)
                await worker.start()
                self.workers.append(worker)
            worker.conns[conn.cid] = conn
            return worker

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.alive and w.proc is not None]

    async def aclose(self) -> None:
        for worker in self.workers:
            await worker.stop()
        self.workers = []


class BaileysConnection(BaileysDirectory):
    """One linked device's socket (wagate.ports.EngineConnection, DirectoryQueries) on a
    worker."""

    def __init__(self, engine: BaileysEngine, session_id: str, auth_state: bytes | None) -> None:
        self._engine = engine
        self.session_id = session_id
        self.cid = engine.connection_id(session_id)
        self._auth_state = auth_state
        self._events = EventQueue()
        self._worker: Worker | None = None
        self._ready: asyncio.Future[None] | None = None
        self._connected = False
        self._closed = False
        self.jid: str | None = None
        self.lid: str | None = None

    def _emit(self, event: EngineEvent) -> None:
        if self._closed:
            return
        if isinstance(event, Disconnected):
            self._connected = False
            log.info("baileys socket closed", session_id=self.session_id, reason=event.reason)
        if isinstance(event, QrCode | Connected | Disconnected):
            resolve_waiter(self._ready)
        self._events.put(event)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("ev")
        if kind == "auth":
            state = str(frame["state"]).encode()
            self._auth_state = state
            self._emit(AuthStateChanged(state))
        elif kind == "ack":
            self._emit(
                MessageAck(str(frame["wa_id"]), datetime.fromtimestamp(float(frame["ts"]), UTC))
            )
        elif kind == "event":
            data = frame["event"]
            if data.get("type") == "pairing_code":
                self._emit(PairingCode(str(data["code"])))
                return
            event = wire.decode_event(data)
            if isinstance(event, InboundMessage):
                event = dataclasses.replace(
                    event,
                    sender_phone=_jid(data, "sender_phone"),
                    sender_lid=_jid(data, "sender_lid"),
                    media=inbound_media(
                        data.get("media"), self._request, media_url=self._engine.media_url
                    ),
                )
            if isinstance(event, Connected):
                self._connected = True
                self.jid, self.lid = event.jid, data.get("lid")
            self._emit(event)

    async def _request(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        """An op on this session's worker (a received file's download)."""
        worker = self._worker
        if worker is None or not worker.alive:
            raise DependencyUnavailable("the session's Baileys worker is gone")
        return await worker.request(frame, timeout=timeout)

    def _worker_died(self) -> None:
        self._worker = None
        if self._connected or (self._ready and not self._ready.done()):
            self._emit(Disconnected(DisconnectReason.BAD_SESSION, "the Baileys worker died"))

    # ------------------------------------------------------------ EngineConnection

    def events(self) -> AsyncIterator[EngineEvent]:
        return self._events.stream()

    async def connect(self) -> None:
        if self._closed:
            return
        self._ready = new_waiter()
        if self._worker is None or not self._worker.alive:
            self._worker = await self._engine.place(self)
        auth = self._auth_state.decode(errors="replace") if self._auth_state is not None else None
        await self._worker.request(
            {
                "op": "open",
                "sid": self.cid,
                "auth": auth,
                "url": self._engine.url,
                "keepalive_ms": int(self._engine.keepalive_s * 1000),
                "sync_history": self._engine.sync_history,
            }
        )
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), CONNECT_TIMEOUT_S)
        except TimeoutError:
            await self._worker.request({"op": "close", "sid": self.cid})
            self._emit(Disconnected(DisconnectReason.TIMED_OUT, "connect timed out"))

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        check_recipient(to)
        if self._closed or not self._connected or self._worker is None:
            raise TransientSendError("not connected", retry_after=5.0)
        body = dict(content)
        guard = self._engine.egress_guard
        if kind in MEDIA_KINDS:
            body["media_b64"] = wire.b64(
                await fetch_media(self._engine.media, guard, self.session_id, content, kind)
            )
        elif kind == "text":
            body = await with_link_preview(body, guard)
        request = {"op": "send", "wa_id": wa_id, "to": to, "kind": kind, "content": body}
        return await self._acked(wa_id, request, timeout)

    async def act(self, wa_id: str, to: str, action: ChatAction, *, timeout: float) -> MessageAck:
        check_recipient(to)
        if self._closed or not self._connected or self._worker is None:
            raise TransientSendError("not connected", retry_after=5.0)
        return await self._acked(wa_id, action_request(wa_id, to, action), timeout)

    async def _acked(self, wa_id: str, request: dict[str, Any], timeout: float) -> MessageAck:
        """One request to the worker that answers with the server's ack of `wa_id`."""
        assert self._worker is not None
        reply = await self._worker.request(
            {**request, "sid": self.cid, "timeout_ms": int(timeout * 1000)}, timeout=timeout + 5
        )
        if reply.get("ok"):
            return MessageAck(wa_id, datetime.fromtimestamp(float(reply["ts"]), UTC))
        error = reply.get("error") or {}
        message = str(error.get("message", "send failed"))
        if error.get("permanent"):
            raise PermanentSendError(message, field="to")
        retry_after = error.get("retry_after")
        raise TransientSendError(message, retry_after=float(retry_after) if retry_after else None)

    async def request_pairing_code(self, phone: str) -> str:
        if self._worker is None:
            raise TransientSendError("not connected")
        reply = await self._worker.request({"op": "pair_phone", "sid": self.cid, "phone": phone})
        if not reply.get("ok"):
            raise TransientSendError(str((reply.get("error") or {}).get("message", "failed")))
        return str(reply["code"])

    async def logout(self) -> None:
        if self._worker is None:
            return
        reply = await self._worker.request({"op": "logout", "sid": self.cid})
        if not reply.get("ok"):
            raise TransientSendError(str((reply.get("error") or {}).get("message", "failed")))

    async def close(self) -> None:
        if self._closed:
            return
        worker, self._worker = self._worker, None
        if worker is not None and worker.alive:
            with contextlib.suppress(WagateError):
                await worker.request({"op": "close", "sid": self.cid}, timeout=5)
            worker.conns.pop(self.cid, None)
        self._closed = True
        self._connected = False
        self._events.end()


def _jid(data: dict[str, Any], name: str) -> str | None:
    """An optional address of the host's inbound event (the phone or LID form of the sender)."""
    value = data.get(name)
    return str(value) if value else None
