"""The real engine: wagate's `WhatsAppEngine` port over whatsmeow (WhatsApp's multi-device
protocol in Go), through neonize's Python binding. `WAGATE_ENGINE=whatsmeow` selects it.

Each connection runs one host process (runner.engines.whatsmeow.host; why a process: see its
docstring) and speaks to it over a pipe (runner.engines.whatsmeow.wire). This side never
imports neonize, so the runner itself never loads the Go library.

Behaviour the supervisor relies on (wagate.ports.EngineConnection), and how it is kept:
- `connect()` restores the auth state into the session's SQLite store on local disk (first
  connect only; later ones reuse the file, which is at least as new), starts the host and
  returns once the outcome is known: the first QR, Connected, or a close. It never raises for
  WhatsApp being unreachable: that is `Disconnected(503)`, a connect that hangs is
  `Disconnected(408)` after `connect_timeout_s`, and a store that is not whatsmeow's (or holds
  no device) is `Disconnected(401)` without starting anything.
- Each host reports at most one close (runner.engines.whatsmeow.mapping has the reason table);
  the adapter then stops it, so whatsmeow's own auto-reconnect never competes with the
  supervisor's backoff. A host that dies without a word is `Disconnected(500)`.
- Auth state: after every change of the store (whatsmeow's commits, polled every
  `capture_interval_s` through SQLite's data_version, and at once on pairing, connect, history
  sync, each send, and before a close is reported) the adapter yields
  `AuthStateChanged(store bytes)`, which the supervisor seals into wagate's AES-GCM backup.
- Sending with a caller-chosen id: neonize 0.5.2 cannot set the WhatsApp message id (its
  SendMessage passes no SendRequestExtra.ID), so whatsmeow generates one. The adapter keeps
  wagate id → WhatsApp id in the store (`wagate_sent_ids`, inside the backed-up file): a resend
  of an id already acked returns the recorded ack without sending, and receipts are translated
  back to wagate's ids. The residual gap (a crash between whatsmeow sending and its ack being
  recorded) is documented in docs/engines.md.
- Inbound messages and receipts: whatsmeow acknowledges them to the server as it decodes them,
  before the consumer takes them, so they are at-most-once across a crash (history sync after a
  reconnect brings recent messages back). docs/engines.md lists this limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.engines.event_stream import EventQueue, new_waiter, resolve_waiter

# Re-exported (`as`) for runner/__main__.py and runner/engines/baileys/engine.py, which import
# them from here; they live in runner.engines.outgoing.
from runner.engines.outgoing import MEDIA_KINDS as MEDIA_KINDS
from runner.engines.outgoing import BucketMedia as BucketMedia
from runner.engines.outgoing import MediaSource as MediaSource
from runner.engines.outgoing import check_recipient
from runner.engines.outgoing import fetch_media as fetch_media
from runner.engines.whatsmeow import wire
from runner.engines.whatsmeow.store import DeviceStore, NotAStore
from wagate.adapters import egress
from wagate.domain.egress_policy import EgressPolicy
from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    EngineEvent,
    MessageAck,
    PairingCode,
    QrCode,
    Receipt,
)
from wagate.domain.sessions import DisconnectReason
from wagate.errors import (
    Conflict,
    DependencyUnavailable,
    PermanentSendError,
    TransientSendError,
    ValidationFailed,
    WagateError,
)
from wagate.logs import get_logger

log = get_logger("wagate.runner.whatsmeow")

CONNECT_TIMEOUT_S = 60.0  # SPEC §4
QUERY_TIMEOUT_S = 60.0
CAPTURE_INTERVAL_S = 2.0
STOP_TIMEOUT_S = 3.0
NOT_CONNECTED_RETRY_S = 5.0
RATE_LIMIT_RETRY_S = 60.0
HOST_MODULE = "runner.engines.whatsmeow.host"


def classify_send_error(text: str) -> WagateError:
    """whatsmeow's send errors arrive as strings (neonize flattens Go errors); decide whether a
    retry can help. Unknown errors are transient: the queue's attempt limit ends them."""
    details = [{"reason": text}]
    lowered = text.lower()
    server = re.search(r"server returned error (\d+)", lowered)
    if server is not None:
        code = int(server.group(1))
        if code in (419, 429):  # resource-limit, rate-overlimit
            return TransientSendError(
                f"WhatsApp rate-limited the send: {text}",
                details=details,
                retry_after=RATE_LIMIT_RETRY_S,
            )
        if 400 <= code < 500 and code != 408:
            return PermanentSendError(f"WhatsApp refused the message: {text}", details=details)
        return TransientSendError(f"WhatsApp failed the send: {text}", details=details)
    permanent = ("unknown server", "recipient must be a user jid", "no lid found")
    if any(p in lowered for p in permanent):
        return PermanentSendError(f"invalid recipient: {text}", field="to", details=details)
    return TransientSendError(f"send failed: {text}", details=details)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class WhatsmeowEngine:
    """Opens whatsmeow connections whose device stores live in `store_dir` (one SQLite file per
    session, readable by the runner's user only). `keep_store=False` (persistence mode `cloud`)
    deletes a session's plaintext store when its connection closes."""

    name = "whatsmeow"

    def __init__(
        self,
        store_dir: Path,
        *,
        media: MediaSource | None = None,
        keep_store: bool = True,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
        capture_interval_s: float = CAPTURE_INTERVAL_S,
        python: str = sys.executable,
        log_level: str = "WARNING",
        keepalive_s: float | None = None,
        proxy: str | None = None,
        host_module: str = HOST_MODULE,
        egress_guard: egress.EgressGuard | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.media = media
        self.keep_store = keep_store
        self.connect_timeout_s = connect_timeout_s
        self.query_timeout_s = query_timeout_s
        self.capture_interval_s = capture_interval_s
        self.python = python
        self.log_level = log_level
        self.proxy = proxy  # WhatsApp through a proxy (socks5:// or http://), if any
        self.host_module = host_module
        # whatsmeow runs its own keep-alive (20-30 s pings, KeepAliveTimeout after failures);
        # the option exists for the contract suite's signature and is not configurable here.
        del keepalive_s
        # Per session: the digest of the state last handed to the supervisor. If it hands the
        # same state back on reconnect, the file on disk is that state or newer: keep the file.
        self.emitted: dict[str, str] = {}
        # Media URLs are fetched through the egress guard; without one, the strictest policy.
        self.egress_guard = egress_guard or egress.EgressGuard(EgressPolicy())

    def store_path(self, session_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)
        return self.store_dir / f"{safe}.db"

    def open(self, session_id: str, auth_state: bytes | None) -> WhatsmeowConnection:
        return WhatsmeowConnection(self, session_id, auth_state)

    async def aclose(self) -> None:
        """Nothing is pooled: each media download has its own guarded client."""

    async def fetch_media(self, session_id: str, content: dict[str, Any]) -> bytes:
        """The bytes of a media message: from the media bucket (media_id) or its URL."""
        return await fetch_media(self.media, self.egress_guard, session_id, content)


class WhatsmeowConnection:
    """One linked device's socket (wagate.ports.EngineConnection), held by a host process."""

    def __init__(self, engine: WhatsmeowEngine, session_id: str, auth_state: bytes | None) -> None:
        self._engine = engine
        self.session_id = session_id
        self._auth_state = auth_state
        self.store = DeviceStore(engine.store_path(session_id))
        self._events = EventQueue()
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str | None]] = {}
        self._next_req = 0
        self._ready: asyncio.Future[None] | None = None
        self._wake_capture = asyncio.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._restored = False
        self._connected = False
        self._closed = False
        self._reported = False  # the current host's close was reported
        self._local_reason: tuple[int, str] | None = None
        self.jid: str | None = None

    @property
    def connected(self) -> bool:
        return self._connected

    def _emit(self, event: EngineEvent) -> None:
        if self._closed:
            return
        if isinstance(event, Disconnected):
            # The supervisor logs the reason code; the library's words are only known here.
            log.info(
                "whatsmeow socket closed",
                session_id=self.session_id,
                reason=int(event.reason),
                detail=event.detail[:300],
            )
        self._events.put(event)

    # ------------------------------------------------------------ EngineConnection

    def events(self) -> AsyncIterator[EngineEvent]:
        return self._events.stream()

    async def connect(self) -> None:
        if self._closed:
            raise RuntimeError("this connection was closed; open a new one")
        if self._proc is not None:
            if not self._reported:
                return  # connecting or connected already
            # This host reported its close and is being stopped: wait, then start a new one.
            old, self._proc = self._proc, None
            await self._stop_host(old)
        if not self._restored:
            try:
                await asyncio.to_thread(self._restore)
            except NotAStore as e:
                self._emit(Disconnected(DisconnectReason.LOGGED_OUT, str(e)))
                return
            except OSError as e:
                self._emit(Disconnected(DisconnectReason.BAD_SESSION, f"cannot write store: {e}"))
                return
            self._restored = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._engine.connect_timeout_s
        try:
            proc = await asyncio.create_subprocess_exec(
                self._engine.python,
                "-m",
                self._engine.host_module,
                "--store",
                str(self.store.path),
                "--session",
                self.session_id,
                "--log-level",
                self._engine.log_level,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=wire.MAX_FRAME,
                env=host_environment(self._engine.proxy),
            )
        except OSError as e:
            self._emit(Disconnected(DisconnectReason.BAD_SESSION, f"cannot start the host: {e}"))
            return
        self._proc = proc
        self._reported = False
        self._local_reason = None
        ready = self._ready = loop.create_future()
        self._tasks = [
            asyncio.create_task(self._read(proc), name=f"whatsmeow-{self.session_id}"),
            asyncio.create_task(self._read_stderr(proc)),
            asyncio.create_task(self._capture_loop(proc)),
        ]
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(ready)
        except TimeoutError:
            self._local_reason = (DisconnectReason.TIMED_OUT, "connect timed out")
            await self._stop_host(proc)

    def _restore(self) -> None:
        state = self._auth_state
        engine = self._engine
        if state is None:
            self.store.restore(None)  # no credentials: pair a new device
            return
        digest = _sha(state)
        if engine.emitted.get(self.session_id) == digest and self.store.exists():
            return  # the file is this state or newer (this process wrote it)
        self.store.restore(state)
        engine.emitted[self.session_id] = digest

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        if not self._connected or self._proc is None:
            raise TransientSendError(
                "the session is not connected", retry_after=NOT_CONNECTED_RETRY_S
            )
        check_recipient(to)
        prior = await asyncio.to_thread(self.store.sent, wa_id)
        if prior is not None:
            # Already acked by WhatsApp (the ack reached us, the runner did not record it).
            ack = MessageAck(wa_id, prior[1])
            self._emit(ack)
            return ack
        frame: dict[str, Any] = {"op": "send", "to": to, "kind": kind, "content": dict(content)}
        if kind in MEDIA_KINDS:
            frame["media"] = wire.b64(await self._engine.fetch_media(self.session_id, content))
            frame["content"] = {k: v for k, v in content.items() if k not in ("url", "media_id")}
        if kind == "reaction" and content.get("message_id"):
            ours = await asyncio.to_thread(self.store.is_ours, str(content["message_id"]))
            if ours is not None:
                frame["content"]["message_id"] = ours
                frame["reaction_from_me"] = True
        if content.get("reply_to"):
            ours = await asyncio.to_thread(self.store.is_ours, str(content["reply_to"]))
            if ours is not None:
                frame["content"]["reply_to"] = ours
        try:
            reply = await self._request(frame, timeout, wa_id=wa_id)
        except TimeoutError:
            raise TransientSendError(
                f"no server ack for {wa_id} within {timeout:g}s", retry_after=timeout
            ) from None
        return MessageAck(wa_id, datetime.fromtimestamp(float(reply["ts"]), UTC))

    async def request_pairing_code(self, phone: str) -> str:
        if self._auth_state is not None:
            raise Conflict("this device is already linked")
        digits = phone.removeprefix("+")
        if not digits.isdigit() or not 6 <= len(digits) <= 16:
            raise ValidationFailed("a phone number in international format", field="phone")
        if self._proc is None:
            await self.connect()
        if self._proc is None or self._reported:
            raise DependencyUnavailable("cannot reach WhatsApp for a pairing code")
        try:
            reply = await self._request(
                {"op": "pair_phone", "phone": digits}, self._engine.query_timeout_s
            )
        except TimeoutError:
            raise DependencyUnavailable("no pairing code from WhatsApp in time") from None
        except WagateError as e:
            raise DependencyUnavailable(f"no pairing code: {e.message}") from e
        code = str(reply["code"])
        self._emit(PairingCode(code))
        return code

    async def logout(self) -> None:
        """Unlink this device. The host reports Disconnected(401) once WhatsApp confirmed."""
        if self._closed or (self._auth_state is None and self.jid is None):
            return
        if self._proc is None:
            await self.connect()
        if self._proc is None or not self._connected:
            return  # already logged out, or unreachable
        with contextlib.suppress(TimeoutError, WagateError):
            await self._request({"op": "logout"}, self._engine.query_timeout_s)
        self._engine.emitted.pop(self.session_id, None)
        await asyncio.to_thread(self.store.wipe)  # these credentials are dead

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._events.begin_close()
        proc = self._proc
        if proc is not None:
            await self._stop_host(proc)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._fail_pending(TransientSendError("the connection closed before the server ack"))
        await asyncio.to_thread(self.store.close)
        if not self._engine.keep_store:
            await asyncio.to_thread(self.store.wipe)
        self._events.end()

    # ------------------------------------------------------------ the host

    async def _request(
        self, frame: dict[str, Any], timeout: float, *, wa_id: str | None = None
    ) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise TransientSendError("the session is not connected")
        self._next_req += 1
        req = self._next_req
        future: asyncio.Future[dict[str, Any]] = new_waiter()
        self._pending[req] = (future, wa_id)
        try:
            proc.stdin.write(wire.pack({**frame, "req": req}))
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as e:
            self._pending.pop(req, None)
            raise TransientSendError(f"the host pipe failed: {e}") from e
        async with asyncio.timeout(timeout):
            # On timeout the entry stays: a late reply to a send is still recorded and acked.
            return await asyncio.shield(future)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                header = await proc.stdout.readexactly(wire.HEADER_SIZE)
                body = await proc.stdout.readexactly(wire.frame_length(header))
                frame = wire.unpack(body)
                if self._proc is not proc:
                    continue  # a host being replaced: what it still says belongs to no socket
                try:
                    if "re" in frame:
                        await self._on_reply(frame)
                    elif frame.get("ev") == "event":
                        await self._on_event(wire.decode_event(frame["event"]))
                    elif frame.get("ev") == "hint":
                        self._wake_capture.set()
                except (KeyError, TypeError, ValueError) as e:  # one bad frame, not a dead pipe
                    log.warning("unreadable host frame", session_id=self.session_id, error=str(e))
        except (asyncio.IncompleteReadError, ConnectionError, wire.FrameError) as e:
            if isinstance(e, wire.FrameError):
                log.warning("bad frame from the host", session_id=self.session_id, error=str(e))
        finally:
            await self._host_gone(proc)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr_tail.append(text)
                log.debug("whatsmeow host", session_id=self.session_id, line=text[:500])

    async def _on_reply(self, frame: dict[str, Any]) -> None:
        entry = self._pending.pop(int(frame["re"]), None)
        if entry is None:
            return
        future, wa_id = entry
        if "ok" in frame:
            result = dict(frame["ok"] or {})
            if wa_id is not None:
                await self._record_ack(wa_id, result)
            if not future.done():
                future.set_result(result)
            return
        text = str(frame.get("error", "unknown error"))
        error: WagateError
        if frame.get("permanent"):
            error = PermanentSendError(text, field="to", details=[{"reason": text}])
        else:
            error = classify_send_error(text)
        if not future.done():
            future.set_exception(error)

    async def _record_ack(self, wa_id: str, result: dict[str, Any]) -> None:
        server_ts = datetime.fromtimestamp(float(result.get("ts") or 0), UTC)
        if server_ts.year < 2000:
            server_ts = datetime.now(UTC)
        result["ts"] = server_ts.timestamp()
        try:
            await asyncio.to_thread(self.store.record_sent, wa_id, str(result["id"]), server_ts)
        except Exception as e:  # the ack stands; only a later resend could not be deduplicated
            log.warning("sent-id ledger write failed", session_id=self.session_id, error=str(e))
        self._wake_capture.set()
        self._emit(MessageAck(wa_id, server_ts))

    async def _on_event(self, event: EngineEvent) -> None:
        if self._reported:
            return  # this host already closed; whatever follows belongs to no socket
        match event:
            case QrCode():
                self._emit(event)
                resolve_waiter(self._ready)
            case Connected(jid=jid):
                self._connected = True
                self.jid = jid
                self._wake_capture.set()
                self._emit(event)
                resolve_waiter(self._ready)
            case Disconnected(reason=reason):
                self._reported = True
                self._connected = False
                self._fail_pending(TransientSendError("the connection closed"))
                if reason not in (DisconnectReason.LOGGED_OUT, DisconnectReason.BANNED):
                    await self._capture()  # the last changes before the close
                else:
                    self._engine.emitted.pop(self.session_id, None)
                self._emit(event)
                resolve_waiter(self._ready)
                proc = self._proc
                if proc is not None:
                    self._tasks.append(asyncio.create_task(self._stop_host(proc)))
            case Receipt(wa_ids=wa_ids):
                try:
                    ours = await asyncio.to_thread(self.store.wagate_ids, wa_ids)
                except Exception as e:
                    log.warning(
                        "receipt ids not translated", session_id=self.session_id, error=str(e)
                    )
                    ours = wa_ids
                self._emit(Receipt(ours, event.kind, event.chat, event.ts))
            case _:
                self._emit(event)

    def _fail_pending(self, error: WagateError) -> None:
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    async def _stop_host(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                proc.stdin.write(wire.pack({"op": "stop"}))
                await proc.stdin.drain()
                proc.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _host_gone(self, proc: asyncio.subprocess.Process) -> None:
        if self._proc is not proc:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        self._proc = None
        self._connected = False
        self._fail_pending(TransientSendError("the connection closed before the server ack"))
        if not self._reported and not self._closed:
            self._reported = True
            if self._local_reason is not None:
                reason, detail = self._local_reason
            else:
                tail = self._stderr_tail[-1] if self._stderr_tail else ""
                reason = DisconnectReason.BAD_SESSION
                detail = f"the whatsmeow host exited with code {proc.returncode}: {tail}"
            self._emit(Disconnected(reason, detail))
        resolve_waiter(self._ready)

    # ------------------------------------------------------------ auth state

    async def _capture_loop(self, proc: asyncio.subprocess.Process) -> None:
        interval = self._engine.capture_interval_s
        while proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_capture.wait(), interval)
            self._wake_capture.clear()
            if self._closed or self._reported:
                return
            await self._capture()

    async def _capture(self) -> None:
        try:
            if not await asyncio.to_thread(self.store.changed):
                return
            state = await asyncio.to_thread(self.store.capture)
        except Exception as e:  # a capture that fails is retried at the next poll
            log.warning("store capture failed", session_id=self.session_id, error=str(e))
            return
        if state is None:
            return
        digest = _sha(state)
        if self._engine.emitted.get(self.session_id) == digest:
            return
        self._engine.emitted[self.session_id] = digest
        self._auth_state = state
        self._emit(AuthStateChanged(state))


# What the host process inherits from the runner's environment: enough to run Python and reach
# the network, and none of the runner's secrets (backup keys, internal secret, admin key).
HOST_ENV_KEEP = (
    "PATH",
    "PYTHONPATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
)
PROXY_ENV = "WAGATE_WHATSMEOW_HOST_PROXY"


def host_environment(proxy: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in HOST_ENV_KEEP}
    env["PYTHONUNBUFFERED"] = "1"
    if proxy:
        env[PROXY_ENV] = proxy  # not in argv, where `ps` would show credentials in the URL
    return env


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
