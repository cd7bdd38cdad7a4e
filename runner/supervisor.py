"""One supervised asyncio task per session: connect, follow the engine's events, reconnect by
the reason table (SPEC §4), keep the auth-state backup fresh
(runner/session_backup.py).

Only this task ever (re)connects its session, so there is never more than one reconnect at a
time; `recover()` only wakes it up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from runner.context import ShardContext
from runner.inbound import InboundSink
from runner.session_backup import SessionBackup
from wagate.contracts import SessionDoc
from wagate.domain import events as ev
from wagate.domain.chat_actions import ChatAction
from wagate.domain.sessions import (
    ALERT_AFTER_CONSECUTIVE_FAILURES,
    DesiredState,
    ReconnectPolicy,
    SessionState,
    policy_for,
    session_transition,
)
from wagate.errors import IllegalTransition, TransientSendError, WagateError
from wagate.logs import get_logger
from wagate.ports import EngineConnection
from wagate.services.events import group_participants_event
from wagate.services.monitoring import (
    RECONNECTS,
    SEND_TIMINGS,
    reason_label,
)

log = get_logger("wagate.runner.session")

CONNECT_TIMEOUT_S = 60.0


class SessionSupervisor:
    def __init__(self, doc: SessionDoc, ctx: ShardContext, inbound: InboundSink) -> None:
        self.session_id = doc.id
        self.tenant_id = doc.tenant_id
        self.pairing_phone = doc.pairing_phone
        self.state = doc.state
        self._ctx = ctx
        self._inbound = inbound
        self._conn: EngineConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._connected = asyncio.Event()
        self._attempt = 0
        self.backup = SessionBackup(doc, ctx, self._update)
        self.reconnects = 0
        self._closing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"session-{self.session_id}")

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self._conn is not None

    @property
    def live_connection(self) -> EngineConnection | None:
        """The socket while it is connected (the api's queries ask it: runner/queries.py)."""
        return self._conn if self.connected else None

    @property
    def ended(self) -> bool:
        """The session loop gave up (logged out, banned, failed): only a new start revives it."""
        return self._task is not None and self._task.done()

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    def recover(self) -> None:
        """Reconnect now (skips the current backoff wait)."""
        self._attempt = 0
        self._wake.set()
        if self._conn is not None and not self.connected:
            # A connect attempt is hanging: closing it makes the loop try again at once.
            self._closing = asyncio.create_task(self._conn.close())

    async def stop(self, *, logout: bool = False, flush: bool = True) -> None:
        """Close the socket; flush the backup first unless we are logging out."""
        self._stopping = True
        self._wake.set()
        conn = self._conn
        if logout and conn is not None:
            with contextlib.suppress(Exception):
                await conn.logout()
        elif flush:
            await self.backup.flush()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.backup.cancel()

    # ------------------------------------------------------------ sending

    async def send(self, wa_id: str, to: str, kind: str, content: dict[str, Any]) -> ev.MessageAck:
        conn = self._conn
        if conn is None or not self.connected:
            raise TransientSendError("the session is not connected", retry_after=5)
        return await conn.send(
            wa_id, to, kind, content, timeout=self._ctx.settings.send_ack_timeout_s
        )

    async def act(self, wa_id: str, to: str, action: ChatAction) -> ev.MessageAck:
        conn = self._conn
        if conn is None or not self.connected:
            raise TransientSendError("the session is not connected", retry_after=5)
        return await conn.act(wa_id, to, action, timeout=self._ctx.settings.send_ack_timeout_s)

    # ------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while not self._stopping:
            reason = await self._connect_once()
            if self._stopping:
                return
            policy = policy_for(reason)
            if not await self._after_disconnect(reason, policy):
                return

    async def _connect_once(self) -> int:
        """Run one connection until it ends; returns the disconnect reason code."""
        ctx = self._ctx
        if not self.backup.restored:
            # Only the first connect reads the backup; later ones use the newest credentials
            # the engine handed us (the backup may lag behind them by the debounce).
            reason = await self.backup.restore()
            if reason is not None:
                return reason
        auth_state = self.backup.auth_state
        conn = ctx.engine.open(self.session_id, auth_state)
        self._conn = conn
        await self._set_state(SessionState.CONNECTING if auth_state else SessionState.PAIRING)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await conn.connect()
            if auth_state is None and self.pairing_phone:
                code = await conn.request_pairing_code(self.pairing_phone)
                await self._set_state(SessionState.PAIRING, pairing_code=code)
            async for event in conn.events():
                reason = await self._on_event(event)
                if reason is not None:
                    return reason
            return 428  # the event stream ended without a reason: a plain close
        except TimeoutError:
            return 408
        except (OSError, ConnectionError, WagateError) as e:
            log.info("connect failed", session_id=self.session_id, error=str(e))
            return 503
        finally:
            self._connected.clear()
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()

    async def _on_event(self, event: ev.EngineEvent) -> int | None:
        ctx = self._ctx
        match event:
            case ev.QrCode(code=code, expires_at=expires_at):
                await self._set_state(SessionState.PAIRING, qr=code, qr_expires_at=expires_at)
            case ev.PairingCode(code=code):
                await self._set_state(SessionState.PAIRING, pairing_code=code)
            case ev.Connected(jid=jid):
                was_reconnect = self._attempt > 0 or self.reconnects > 0
                previous = self._attempt
                self._attempt = 0
                self._connected.set()
                await self._set_state(
                    SessionState.CONNECTED,
                    jid=jid,
                    qr=None,
                    qr_expires_at=None,
                    pairing_code=None,
                    reconnect_attempts=0,
                )
                if was_reconnect:
                    await ctx.io(
                        ctx.alerts.record_recovery,
                        "reconnect",
                        f"after {previous} failed attempt(s)",
                        "connected",
                        session_id=self.session_id,
                        shard=ctx.shard,
                    )
                    await ctx.io(ctx.alerts.resolve, "session_failing", self.session_id)
            case ev.AuthStateChanged(state=state):
                self.backup.changed(state)
            case ev.Disconnected(reason=reason):
                return reason
            case ev.MessageAck():
                pass  # the engine resolves the waiting send itself
            case ev.GroupParticipantsChanged():
                notice = group_participants_event(self.session_id, event)
                await self._inbound.announce(self.tenant_id, notice)
            case ev.Receipt() | ev.InboundMessage():
                if isinstance(event, ev.Receipt):
                    SEND_TIMINGS.receipt(event.kind, event.wa_ids, event.ts)
                await self._inbound.accept(self.tenant_id, self.session_id, event)
        return None

    async def _after_disconnect(self, reason: int, policy: ReconnectPolicy) -> bool:
        """Decide what a disconnect means; False ends the supervisor."""
        ctx = self._ctx
        log.info("disconnected", session_id=self.session_id, reason=reason, policy=policy.value)
        RECONNECTS.labels(reason_label(reason), policy.value).inc()
        if policy is ReconnectPolicy.LOGGED_OUT:
            self.backup.forget()
            await self._set_state(SessionState.LOGGED_OUT, last_reason=reason, jid=None)
            await ctx.io(ctx.backups.wipe, self.tenant_id, self.session_id)
            await ctx.io(
                ctx.alerts.raise_alert,
                "session_logged_out",
                self.session_id,
                "the phone removed this device; pair again with a new QR",
                "warning",
            )
            return False
        if policy is ReconnectPolicy.BANNED:
            await self._set_state(SessionState.FAILED, last_reason=reason)
            await ctx.io(
                ctx.alerts.raise_alert,
                "session_failed",
                self.session_id,
                "WhatsApp banned this number",
                "critical",
            )
            return False
        if policy is ReconnectPolicy.REPLACED and ctx.fence is None:
            return False  # we lost the shard: the new owner holds the socket now
        self.reconnects += 1
        self._attempt += 1
        await self._set_state(
            SessionState.RECONNECTING, last_reason=reason, reconnect_attempts=self._attempt
        )
        if self._attempt == ALERT_AFTER_CONSECUTIVE_FAILURES:
            await ctx.io(
                ctx.alerts.raise_alert,
                "session_failing",
                self.session_id,
                f"{self._attempt} reconnects in a row failed (last reason {reason})",
                "critical",
            )
        delay = 0.0 if policy is ReconnectPolicy.RETRY_NOW else ctx.backoff.delay(self._attempt - 1)
        if policy is ReconnectPolicy.REPLACED:
            delay = max(delay, 30.0)  # another socket took the account: do not fight it
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        return not self._stopping

    # ------------------------------------------------------------ state writes

    async def _set_state(self, state: SessionState, **fields: Any) -> None:
        """Record the state and announce it (`session.state`, runner/events.py). A transition
        the table refuses is logged and not written: the loop goes on (docs/decisions.md)."""
        try:
            session_transition(self.state, state)
        except IllegalTransition as e:
            log.error("session state refused", session_id=self.session_id, error=e.message)
            return
        previous, self.state = self.state, state
        if await self._update(state=state, **fields):
            await self._inbound.events.state_changed(
                self.tenant_id, self.session_id, state, previous, fields, self._attempt
            )

    async def _update(self, **fields: Any) -> bool:
        """Write `fields`; False when this runner is not the session's owner any more."""
        ctx = self._ctx
        fence = ctx.fence
        if fence is None:
            return False  # not the owner any more: never write
        try:
            # Fenced; journaled while the store is unreachable, replayed in order after.
            await ctx.durable.update_session(self.session_id, fence, fields, ctx.clock.now())
        except WagateError as e:
            log.warning("session state write failed", session_id=self.session_id, error=e.message)
        return True

    # ------------------------------------------------------------ backups (session_backup.py)

    async def flush_backup(self) -> bool:
        return await self.backup.flush()

    async def periodic_backup(self) -> None:
        await self.backup.periodic()

    @property
    def last_backup_at(self) -> datetime | None:
        return self.backup.last_backup_at

    @property
    def restored_backup_at(self) -> datetime | None:
        return self.backup.restored_backup_at

    @property
    def backup_failures(self) -> int:
        return self.backup.failures


SupervisorFactory = Callable[[SessionDoc], SessionSupervisor]


def desired_running(doc: SessionDoc) -> bool:
    return doc.desired == DesiredState.RUNNING and doc.state not in (
        SessionState.LOGGED_OUT,
        SessionState.STOPPED,
    )
