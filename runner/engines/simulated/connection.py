"""One linked device's socket to the simulator (wagate.ports.EngineConnection): the websocket,
its reading task, and the sequence numbers that tell the server what the consumer has handled."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp

from runner.engines.event_stream import EventQueue, new_waiter, resolve_waiter
from runner.engines.simulated import frames
from runner.engines.simulated.outgoing import SimulatedOutgoing
from runner.engines.simulated.queries import QueryChannel, SimulatedDirectory
from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    EngineEvent,
    MessageAck,
    PairingCode,
    QrCode,
)
from wagate.errors import (
    Conflict,
    DependencyUnavailable,
    TransientSendError,
)

if TYPE_CHECKING:
    from runner.engines.simulated.engine import SimulatedEngine

CLOSE_TIMEOUT_S = 5.0
TIMED_OUT = 408
UNAVAILABLE = 503
LOGGED_OUT = 401
ACK_EVERY = 64  # acknowledge consumed frames at least this often under load


class SimulatedConnection(SimulatedOutgoing, SimulatedDirectory):
    """One linked device's socket (wagate.ports.EngineConnection, DirectoryQueries)."""

    __slots__ = (
        "_acked_seq",
        "_auth_error",
        "_closed",
        "_connected",
        "_consumed_seq",
        "_creds",
        "_engine",
        "_events",
        "_local_reason",
        "_pair_code",
        "_pending",
        "_queries",
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
        self._events = EventQueue()
        self._pending: dict[str, asyncio.Future[MessageAck]] = {}
        self._pair_code: asyncio.Future[str] | None = None
        self._queries = QueryChannel()
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
        self._events.put(event, seq)

    # ------------------------------------------------------------ EngineConnection

    def events(self) -> AsyncIterator[EngineEvent]:
        return self._events.stream(on_consumed=self._consumed)

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
            await ws.send_str(frames.encode(hello))
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(ready)
        except TimeoutError:
            self._local_reason = (TIMED_OUT, "no answer to hello")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await ws.close()

    async def request_pairing_code(self, phone: str) -> str:
        if self._creds is not None:
            raise Conflict("this device is already linked")
        if self._ws is None:
            await self.connect()
        ws = self._ws
        if ws is None or ws.closed:
            raise DependencyUnavailable("cannot reach the simulator for a pairing code")
        future = self._pair_code = new_waiter()
        await ws.send_str(frames.encode({"t": "pair_code_request", "phone": phone}))
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
        self._events.begin_close()
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
        self._events.end()

    # ------------------------------------------------------------ the socket

    async def _consumed(self, seq: int) -> None:
        """The consumer took the event that completed frame `seq` and asked for the next."""
        self._consumed_seq = seq
        if self._creds is not None:
            self._engine.consumed[str(self._creds.get("secret"))] = seq
        if self._events.empty() or seq - self._acked_seq >= ACK_EVERY:
            await self._ack_consumed()

    async def _ack_consumed(self) -> None:
        ws = self._ws
        seq = self._consumed_seq
        if ws is None or ws.closed or not self._connected or seq <= self._acked_seq:
            return  # the next hello carries `acked` instead
        self._acked_seq = seq
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str(frames.encode({"t": "acked", "seq": seq}))

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
        return frames.close_reason(ws.close_code, detail)

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
        self._queries.fail_all()
        resolve_waiter(self._ready)
        if reason is not None and reason[0] == LOGGED_OUT and self._creds is not None:
            self._engine.consumed.pop(str(self._creds.get("secret")), None)  # a dead device
        if reason is not None and not self._closed:
            self._emit(Disconnected(reason[0], reason[1]))

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
        elif kind in ("result", "group_participants"):
            self._on_directory_frame(frame, seq)
        elif kind == "receipt":
            self._emit(frames.receipt(frame), seq)
        elif kind == "msg":
            fetcher = self._engine.media_download
            self._emit(frames.inbound_message(frame, from_history=False, fetcher=fetcher), seq)
        elif kind == "history":
            messages = [m for m in frame.get("messages", ()) if isinstance(m, dict)]
            for i, message in enumerate(messages):
                last = i == len(messages) - 1
                msg = frames.inbound_message(
                    message, from_history=True, fetcher=self._engine.media_download
                )
                self._emit(msg, seq if last else 0)
        elif kind == "keys":
            if self._creds is not None:
                self._creds.update(frame.get("keys") or {})
                self._creds["keys_generation"] = frame.get("generation")
                self._emit(AuthStateChanged(self.auth_state or b""), seq)
        elif kind == "qr":
            expires = datetime.now(UTC) + timedelta(seconds=float(frame.get("expires_in", 20)))
            self._emit(QrCode(str(frame.get("code", "")), expires))
            resolve_waiter(self._ready)
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
            resolve_waiter(self._ready)
        elif kind == "error" and self._pair_code is not None and not self._pair_code.done():
            # The only request that can fail this way is a pairing code request.
            error = f"{frame.get('code')}: {frame.get('message')}"
            self._pair_code.set_exception(Conflict(error))
