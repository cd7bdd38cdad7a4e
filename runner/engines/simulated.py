"""The simulated engine: wagate's `WhatsAppEngine` port over the simulator's websocket protocol
(simulator/PROTOCOL.md), used by the demo, the tests, chaos runs and benchmarks.

Written against the protocol document rather than by importing the simulator package: the
simulator and the runner are separate programs (import-linter keeps them apart).

Behaviour the supervisor can rely on:
- `connect()` returns once the outcome is known — the first QR (no credentials), Connected, or
  a close — and never raises for a refusal or an unreachable server: every outcome, including a
  failed handshake, is an event (`Disconnected(503)` for an unreachable or refusing server,
  `Disconnected(408)` for a timeout).
- `events()` yields until `close()`; each socket close yields exactly one `Disconnected(reason)`
  (close code 4000+reason → reason; keep-alive timeout → 408; any other close → 428). After it,
  `connect()` may be called again on the same connection, which keeps the newest credentials.
  `close()` itself yields no Disconnected: the caller knows why it closed.
- Server acks resolve the waiting `send()` *and* are yielded as `MessageAck`, so an ack that
  arrives after `send()` timed out is still seen.
- Receipts and inbound messages are acknowledged to the server only after the consumer has
  taken them from `events()` (it asks for the next one), so a crash before they were handled
  means WhatsApp delivers them again. They may therefore repeat; consumers dedupe by id.

Memory (SPEC §9: ≤ 1 MB per idle connected session): every connection of an engine shares one
aiohttp ClientSession; a connection is one websocket, one reading task, one small queue and its
credentials dict. Keep-alive is aiohttp's own websocket ping timer, not a task per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiohttp

from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    EngineEvent,
    InboundMessage,
    MessageAck,
    PairingCode,
    QrCode,
    Receipt,
)
from wagate.errors import (
    Conflict,
    DependencyUnavailable,
    PermanentSendError,
    TransientSendError,
)

KEEPALIVE_S = 30.0  # SPEC §4
CONNECT_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 5.0
CLOSE_CODE_BASE = 4000
CLOSED = 428  # a plain network close
TIMED_OUT = 408
UNAVAILABLE = 503
LOGGED_OUT = 401
ACK_EVERY = 64  # acknowledge consumed frames at least this often under load
NOT_CONNECTED_RETRY_S = 5.0

_Item = tuple[EngineEvent, int]


def _ts(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC)


def _encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed future's exception as seen (its waiter may have timed out already)."""
    if not future.cancelled():
        future.exception()


class SimulatedEngine:
    """Opens connections to one simulator. Pass an `http_session` to share a ClientSession with
    other code; it must allow unlimited connections (`TCPConnector(limit=0)`), because each
    websocket holds one. Without one, the engine makes its own on first use."""

    name = "simulator"

    def __init__(
        self,
        simulator_url: str,
        http_session: aiohttp.ClientSession | None = None,
        *,
        keepalive_s: float = KEEPALIVE_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        base = simulator_url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[len("http") :]
        self.ws_url = f"{base}/ws"
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.query_timeout_s = query_timeout_s
        self._http = http_session
        self._owns_http = http_session is None
        # Per linked device (keyed by its secret, unique per link): the last server sequence
        # number a consumer took. A new connection of the same device says so in its hello, so
        # frames already handled are not sent again.
        self.consumed: dict[str, int] = {}

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or (self._owns_http and self._http.closed):
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
            )
        return self._http

    def open(self, session_id: str, auth_state: bytes | None) -> SimulatedConnection:
        return SimulatedConnection(self, session_id, auth_state)

    async def aclose(self) -> None:
        """Close the ClientSession if the engine made it (the runner calls this at exit)."""
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None


class SimulatedConnection:
    """One linked device's socket (wagate.ports.EngineConnection)."""

    __slots__ = (
        "_acked_seq",
        "_auth_error",
        "_closed",
        "_connected",
        "_consumed_seq",
        "_creds",
        "_engine",
        "_local_reason",
        "_pair_code",
        "_pending",
        "_queue",
        "_reader",
        "_ready",
        "_received_seq",
        "_ws",
        "jid",
        "session_id",
    )

    def __init__(self, engine: SimulatedEngine, session_id: str, auth_state: bytes | None) -> None:
        self._engine = engine
        self.session_id = session_id
        self.jid: str | None = None
        self._creds: dict[str, Any] | None = None
        self._auth_error: str | None = None
        if auth_state is not None:
            try:
                creds = json.loads(auth_state)
            except ValueError:
                creds = None
            if isinstance(creds, dict) and isinstance(creds.get("jid"), str):
                self._creds = creds
            else:
                self._auth_error = "the stored auth state is not simulator credentials"
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[MessageAck]] = {}
        self._pair_code: asyncio.Future[str] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._local_reason: tuple[int, str] | None = None
        self._connected = False
        self._closed = False
        self._received_seq = 0  # highest server sequence number taken into the queue
        self._consumed_seq = 0  # … handed to the consumer
        self._acked_seq = 0  # … acknowledged to the server

    # ------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def auth_state(self) -> bytes | None:
        """The credentials as opaque bytes (JSON), as AuthStateChanged carries them."""
        if self._creds is None:
            return None
        return json.dumps(self._creds, separators=(",", ":"), sort_keys=True).encode()

    def _emit(self, event: EngineEvent, seq: int = 0) -> None:
        self._queue.put_nowait((event, seq))

    # ------------------------------------------------------------ EngineConnection

    def events(self) -> AsyncIterator[EngineEvent]:
        return _EventStream(self)

    async def connect(self) -> None:
        if self._closed:
            raise RuntimeError("this connection was closed; open a new one")
        if self._ws is not None:
            return
        if self._auth_error is not None:
            self._emit(Disconnected(LOGGED_OUT, self._auth_error))
            return
        engine = self._engine
        loop = asyncio.get_running_loop()
        deadline = loop.time() + engine.connect_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                ws = await engine.http().ws_connect(
                    engine.ws_url,
                    heartbeat=engine.keepalive_s,
                    max_msg_size=0,
                    autoping=True,
                )
        except aiohttp.WSServerHandshakeError as e:
            reason = e.status if e.status in (LOGGED_OUT, 403) else UNAVAILABLE
            self._emit(Disconnected(reason, f"websocket handshake refused: HTTP {e.status}"))
            return
        except TimeoutError:
            self._emit(Disconnected(TIMED_OUT, "connect timed out"))
            return
        except (aiohttp.ClientError, OSError) as e:
            self._emit(Disconnected(UNAVAILABLE, f"cannot reach the simulator: {e}"))
            return
        self._ws = ws
        self._local_reason = None
        ready = self._ready = loop.create_future()
        self._reader = asyncio.create_task(self._read(ws), name=f"engine-{self.session_id}")
        if self._creds is not None:
            known = engine.consumed.get(str(self._creds.get("secret")), 0)
            self._consumed_seq = max(self._consumed_seq, known)
        hello = {"t": "hello", "v": 1, "creds": self._creds, "acked": self._consumed_seq}
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str(_encode(hello))
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(ready)
        except TimeoutError:
            self._local_reason = (TIMED_OUT, "no answer to hello")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.close()

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        ws = self._ws
        if ws is None or not self._connected or ws.closed:
            raise TransientSendError(
                "the session is not connected", retry_after=NOT_CONNECTED_RETRY_S
            )
        try:
            frame = _encode({"t": "send", "id": wa_id, "to": to, "kind": kind, "content": content})
        except (TypeError, ValueError) as e:
            raise PermanentSendError(f"the content cannot be encoded: {e}") from e
        future = self._pending.get(wa_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            self._pending[wa_id] = future
        try:
            await ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError) as e:
            if self._pending.get(wa_id) is future:
                del self._pending[wa_id]
            raise TransientSendError(f"the socket failed while sending: {e}") from e
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            if self._pending.get(wa_id) is future:
                del self._pending[wa_id]  # a late ack still arrives as a MessageAck event
            raise TransientSendError(
                f"no server ack for {wa_id} within {timeout:g}s", retry_after=timeout
            ) from None

    async def request_pairing_code(self, phone: str) -> str:
        if self._creds is not None:
            raise Conflict("this device is already linked")
        if self._ws is None:
            await self.connect()
        ws = self._ws
        if ws is None or ws.closed:
            raise DependencyUnavailable("cannot reach the simulator for a pairing code")
        future = self._pair_code = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        await ws.send_str(_encode({"t": "pair_code_request", "phone": phone}))
        try:
            async with asyncio.timeout(self._engine.query_timeout_s):
                code: str = await asyncio.shield(future)
        except TimeoutError:
            raise DependencyUnavailable("no pairing code from the simulator") from None
        finally:
            self._pair_code = None
        self._emit(PairingCode(code))
        return code

    async def logout(self) -> None:
        """Unlink this device; the server closes the socket with 401 (yielded as
        Disconnected(401)), and the stored credentials stop working."""
        if self._creds is None or self._closed:
            return
        if self._ws is None:
            await self.connect()
        ws, reader = self._ws, self._reader
        if ws is None or reader is None or not self._connected:
            return  # could not log in: already logged out, or unreachable
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str('{"t":"logout"}')
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(reader)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ws, reader = self._ws, self._reader
        if ws is not None:
            await self._ack_consumed()
            with contextlib.suppress(TimeoutError, ConnectionError, aiohttp.ClientError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.close()
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._socket_gone(ws, None)
        self._queue.put_nowait(None)

    # ------------------------------------------------------------ the socket

    async def _consumed(self, seq: int) -> None:
        """The consumer took the event that completed frame `seq` and asked for the next."""
        self._consumed_seq = seq
        if self._creds is not None:
            self._engine.consumed[str(self._creds.get("secret"))] = seq
        if self._queue.empty() or seq - self._acked_seq >= ACK_EVERY:
            await self._ack_consumed()

    async def _ack_consumed(self) -> None:
        ws = self._ws
        seq = self._consumed_seq
        if ws is None or ws.closed or not self._connected or seq <= self._acked_seq:
            return  # the next hello carries `acked` instead
        self._acked_seq = seq
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str(_encode({"t": "acked", "seq": seq}))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        detail = ""
        try:
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    for frame in data if isinstance(data, list) else (data,):
                        if isinstance(frame, dict):
                            self._on_frame(frame)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    detail = str(msg.extra or "")
                    break
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    break
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
            self._socket_gone(ws, self._close_reason(ws, detail))

    def _close_reason(self, ws: aiohttp.ClientWebSocketResponse, detail: str) -> tuple[int, str]:
        if self._local_reason is not None:
            return self._local_reason
        if isinstance(ws.exception(), aiohttp.ServerTimeoutError | TimeoutError):
            return TIMED_OUT, "keep-alive timeout"
        code = ws.close_code
        if code is not None and CLOSE_CODE_BASE < code < CLOSE_CODE_BASE + 1000:
            return code - CLOSE_CODE_BASE, detail
        return CLOSED, detail or "connection closed"

    def _socket_gone(
        self, ws: aiohttp.ClientWebSocketResponse | None, reason: tuple[int, str] | None
    ) -> None:
        if ws is not None and self._ws is not ws:
            return  # an older socket; its close was already reported
        self._ws = None
        self._reader = None
        self._connected = False
        error = TransientSendError("the connection closed before the server ack")
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        if self._pair_code is not None and not self._pair_code.done():
            self._pair_code.set_exception(DependencyUnavailable("the connection closed"))
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        if reason is not None and reason[0] == LOGGED_OUT and self._creds is not None:
            self._engine.consumed.pop(str(self._creds.get("secret")), None)  # a dead device
        if reason is not None and not self._closed:
            self._emit(Disconnected(reason[0], reason[1]))

    def _resolve_ready(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        seq = frame.get("seq")
        if isinstance(seq, int) and seq:
            if seq <= self._received_seq:
                return  # re-sent after a reconnect, but already in our queue
            self._received_seq = seq
        else:
            seq = 0
        if kind == "ack":
            self._on_ack(frame)
        elif kind == "nack":
            self._on_nack(frame)
        elif kind == "receipt":
            receipt_kind: Literal["delivered", "read"] = (
                "read" if frame.get("kind") == "read" else "delivered"
            )
            ids = tuple(str(i) for i in frame.get("ids", ()))
            chat = str(frame.get("chat", ""))
            self._emit(Receipt(ids, receipt_kind, chat, _ts(frame.get("ts"))), seq)
        elif kind == "msg":
            self._emit(self._inbound(frame, from_history=False), seq)
        elif kind == "history":
            messages = [m for m in frame.get("messages", ()) if isinstance(m, dict)]
            for i, message in enumerate(messages):
                last = i == len(messages) - 1
                self._emit(self._inbound(message, from_history=True), seq if last else 0)
        elif kind == "keys":
            if self._creds is not None:
                self._creds.update(frame.get("keys") or {})
                self._creds["keys_generation"] = frame.get("generation")
                self._emit(AuthStateChanged(self.auth_state or b""), seq)
        elif kind == "qr":
            expires = datetime.now(UTC) + timedelta(seconds=float(frame.get("expires_in", 20)))
            self._emit(QrCode(str(frame.get("code", "")), expires))
            self._resolve_ready()
        elif kind == "pair_code":
            if self._pair_code is not None and not self._pair_code.done():
                self._pair_code.set_result(str(frame.get("code", "")))
        elif kind == "paired":
            creds = frame.get("creds")
            if isinstance(creds, dict):
                self._creds = creds
                self._emit(AuthStateChanged(self.auth_state or b""))
        elif kind == "connected":
            self._connected = True
            self.jid = str(frame.get("jid", ""))
            self._emit(Connected(self.jid))
            self._resolve_ready()
        elif kind == "error" and self._pair_code is not None and not self._pair_code.done():
            # The only request that can fail this way is a pairing code request.
            error = f"{frame.get('code')}: {frame.get('message')}"
            self._pair_code.set_exception(Conflict(error))

    def _on_ack(self, frame: dict[str, Any]) -> None:
        wa_id = str(frame.get("id", ""))
        ack = MessageAck(wa_id, _ts(frame.get("ts")))
        future = self._pending.pop(wa_id, None)
        if future is not None and not future.done():
            future.set_result(ack)
        self._emit(ack)

    def _on_nack(self, frame: dict[str, Any]) -> None:
        future = self._pending.pop(str(frame.get("id", "")), None)
        if future is None or future.done():
            return
        code = str(frame.get("code", "error"))
        message = f"{code}: {frame.get('message', '')}"
        details = [{"reason": code}]
        error: Exception
        if frame.get("permanent"):
            error = PermanentSendError(message, field="to", details=details)
        else:
            retry_after = frame.get("retry_after")
            error = TransientSendError(
                message,
                details=details,
                retry_after=float(retry_after) if retry_after is not None else None,
            )
        future.set_exception(error)

    @staticmethod
    def _inbound(frame: dict[str, Any], *, from_history: bool) -> InboundMessage:
        content = frame.get("content")
        return InboundMessage(
            wa_id=str(frame.get("id", "")),
            chat=str(frame.get("chat", "")),
            sender=str(frame.get("sender", "")),
            kind=str(frame.get("kind", "text")),
            content=content if isinstance(content, dict) else {},
            ts=_ts(frame.get("ts")),
            from_history=from_history,
            from_me=bool(frame.get("from_me", False)),
        )


class _EventStream:
    """What `events()` returns: an async iterator object rather than an async generator, so a
    consumer's timeout or cancellation while it waits does not end the stream (a generator
    would be finished for good by the CancelledError passing through it)."""

    __slots__ = ("_conn", "_handed")

    def __init__(self, conn: SimulatedConnection) -> None:
        self._conn = conn
        self._handed = 0  # sequence number completed by the event last handed out

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> EngineEvent:
        conn = self._conn
        if self._handed:
            # The consumer asked for the next event: it has handled the last one.
            seq, self._handed = self._handed, 0
            await conn._consumed(seq)
        queue = conn._queue
        if conn._closed and queue.empty():
            raise StopAsyncIteration
        item = await queue.get()
        if item is None:
            queue.put_nowait(None)  # the end stays visible to any later reader
            raise StopAsyncIteration
        event, seq = item
        self._handed = seq
        return event
