"""One whatsmeow socket (wagate.ports.EngineConnection): a host process per connect
(runner.engines.whatsmeow.host_process), the session's device store kept in step with the
backed-up auth state (runner.engines.whatsmeow.auth_state), and the sent-id ledger that gives a
resend of an acked wagate id the recorded ack (neonize 0.5.2 cannot choose WhatsApp's id).

How each promise of the port is kept, and the limits: docs/engines.md, "How the whatsmeow engine
works". In short: `connect()` returns once the first QR, Connected or a close is known and never
raises for the network (503 unreachable, 408 hung, 401 not a whatsmeow store); each host reports
at most one close and is then stopped, so whatsmeow's own reconnect never competes with the
supervisor's backoff; a host that dies without a word is `Disconnected(500)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.engines.chat_actions import action_request
from runner.engines.event_stream import EventQueue, resolve_waiter
from runner.engines.link_preview import with_link_preview
from runner.engines.outgoing import MEDIA_KINDS, check_recipient
from runner.engines.whatsmeow import wire
from runner.engines.whatsmeow.auth_state import AuthStateSync
from runner.engines.whatsmeow.host_process import HostProcess
from runner.engines.whatsmeow.queries import WhatsmeowDirectory
from runner.engines.whatsmeow.store import DeviceStore, NotAStore
from wagate.domain.chat_actions import ChatAction, EditText, Revoke
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

if TYPE_CHECKING:
    from runner.engines.whatsmeow.engine import WhatsmeowEngine

log = get_logger("wagate.runner.whatsmeow")

NOT_CONNECTED_RETRY_S = 5.0


class WhatsmeowConnection(WhatsmeowDirectory):
    """One linked device's socket (wagate.ports.EngineConnection, DirectoryQueries), held by a
    host process."""

    def __init__(self, engine: WhatsmeowEngine, session_id: str, auth_state: bytes | None) -> None:
        self._engine = engine
        self.session_id = session_id
        self.store = DeviceStore(engine.store_path(session_id))
        self._auth = AuthStateSync(self.store, session_id, engine.emitted, auth_state)
        self._events = EventQueue()
        self._host: HostProcess | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[None] | None = None
        self._wake_capture = asyncio.Event()
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
        if self._host is not None:
            if not self._reported:
                return  # connecting or connected already
            # This host reported its close and is being stopped: wait, then start a new one.
            old, self._host = self._host, None
            old.detach()
            await old.stop()
        try:
            await self._auth.restore_once()
        except NotAStore as e:
            self._emit(Disconnected(DisconnectReason.LOGGED_OUT, str(e)))
            return
        except OSError as e:
            self._emit(Disconnected(DisconnectReason.BAD_SESSION, f"cannot write store: {e}"))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._engine.connect_timeout_s
        engine = self._engine
        try:
            host = await HostProcess.start(
                self,
                python=engine.python,
                module=engine.host_module,
                store=self.store.path,
                session_id=self.session_id,
                log_level=engine.log_level,
                proxy=engine.proxy,
            )
        except OSError as e:
            self._emit(Disconnected(DisconnectReason.BAD_SESSION, f"cannot start the host: {e}"))
            return
        self._host = host
        self._reported = False
        self._local_reason = None
        ready = self._ready = loop.create_future()
        self._tasks = [*host.reading_tasks(), asyncio.create_task(self._capture_loop(host))]
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(ready)
        except TimeoutError:
            self._local_reason = (DisconnectReason.TIMED_OUT, "connect timed out")
            await host.stop()

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        if not self._connected or self._host is None:
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
        if kind == "text":
            content = await with_link_preview(content, self._engine.egress_guard)
        frame: dict[str, Any] = {"op": "send", "to": to, "kind": kind, "content": dict(content)}
        if kind in MEDIA_KINDS:
            media = await self._engine.fetch_media(self.session_id, content, kind)
            frame["media"] = wire.b64(media)
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

    async def act(self, wa_id: str, to: str, action: ChatAction, *, timeout: float) -> MessageAck:
        """An edit or revoke names its target by whatsmeow's id (the sent-id ledger) and is
        ledgered itself like a send; a read or presence answers once written."""
        if not self._connected or self._host is None:
            raise TransientSendError(
                "the session is not connected", retry_after=NOT_CONNECTED_RETRY_S
            )
        check_recipient(to)
        frame = action_request(wa_id, to, action)
        if isinstance(action, EditText | Revoke):
            prior = await asyncio.to_thread(self.store.sent, wa_id)
            if prior is not None:
                ack = MessageAck(wa_id, prior[1])
                self._emit(ack)
                return ack
            ours = await asyncio.to_thread(self.store.is_ours, action.target_wa_id)
            if ours is None:
                raise PermanentSendError(
                    f"message {action.target_wa_id} was not sent from this device",
                    code="message_unknown",
                )
            frame["content"]["message_id"] = ours
        try:
            reply = await self._request(
                frame, timeout, wa_id=wa_id if isinstance(action, EditText | Revoke) else None
            )
        except TimeoutError:
            raise TransientSendError(
                f"no answer for {wa_id} within {timeout:g}s", retry_after=timeout
            ) from None
        return MessageAck(wa_id, datetime.fromtimestamp(float(reply["ts"]), UTC))

    async def request_pairing_code(self, phone: str) -> str:
        if self._auth.state is not None:
            raise Conflict("this device is already linked")
        digits = phone.removeprefix("+")
        if not digits.isdigit() or not 6 <= len(digits) <= 16:
            raise ValidationFailed("a phone number in international format", field="phone")
        if self._host is None:
            await self.connect()
        if self._host is None or self._reported:
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
        if self._closed or (self._auth.state is None and self.jid is None):
            return
        if self._host is None:
            await self.connect()
        if self._host is None or not self._connected:
            return  # already logged out, or unreachable
        with contextlib.suppress(TimeoutError, WagateError):
            await self._request({"op": "logout"}, self._engine.query_timeout_s)
        self._auth.forget()
        await asyncio.to_thread(self.store.wipe)  # these credentials are dead

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._events.begin_close()
        host = self._host
        if host is not None:
            await host.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if host is not None:
            host.fail_pending(TransientSendError("the connection closed before the server ack"))
        await asyncio.to_thread(self.store.close)
        if not self._engine.keep_store:
            await asyncio.to_thread(self.store.wipe)
        self._events.end()

    # ------------------------------------------------------------ the host (HostListener)

    async def _request(
        self, frame: dict[str, Any], timeout: float, *, wa_id: str | None = None
    ) -> dict[str, Any]:
        host = self._host
        if host is None:
            raise TransientSendError("the session is not connected")
        return await host.request(frame, timeout, wa_id=wa_id)

    async def on_host_sent(self, wa_id: str, result: dict[str, Any]) -> None:
        """Record WhatsApp's id for wagate's before the ack is reported, so a resend of this id
        is answered from the ledger and receipts are translated back."""
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

    def on_host_store_hint(self) -> None:
        self._wake_capture.set()

    async def on_host_event(self, event: EngineEvent) -> None:
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
                host = self._host
                if host is not None:
                    host.fail_pending(TransientSendError("the connection closed"))
                if reason not in (DisconnectReason.LOGGED_OUT, DisconnectReason.BANNED):
                    await self._capture()  # the last changes before the close
                else:
                    self._auth.forget()
                self._emit(event)
                resolve_waiter(self._ready)
                if host is not None:
                    self._tasks.append(asyncio.create_task(host.stop()))
            case InboundMessage(kind="poll_vote", content=vote):
                # The poll's id as wagate knows it (whatsmeow chose the one WhatsApp has).
                (poll_id,) = await asyncio.to_thread(
                    self.store.wagate_ids, (str(vote.get("poll_id")),)
                )
                self._emit(dataclasses.replace(event, content={**vote, "poll_id": poll_id}))
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

    async def on_host_exit(self, host: HostProcess) -> None:
        if self._host is not host:
            return
        await host.wait_exit()
        self._host = None
        self._connected = False
        host.fail_pending(TransientSendError("the connection closed before the server ack"))
        if not self._reported and not self._closed:
            self._reported = True
            if self._local_reason is not None:
                reason, detail = self._local_reason
            else:
                tail = host.stderr_tail[-1] if host.stderr_tail else ""
                reason = DisconnectReason.BAD_SESSION
                detail = f"the whatsmeow host exited with code {host.proc.returncode}: {tail}"
            self._emit(Disconnected(reason, detail))
        resolve_waiter(self._ready)

    # ------------------------------------------------------------ auth state

    async def _capture_loop(self, host: HostProcess) -> None:
        interval = self._engine.capture_interval_s
        while host.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_capture.wait(), interval)
            self._wake_capture.clear()
            if self._closed or self._reported:
                return
            await self._capture()

    async def _capture(self) -> None:
        state = await self._auth.capture()
        if state is not None:
            self._emit(AuthStateChanged(state))
