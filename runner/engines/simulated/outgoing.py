"""What the simulated connection writes and waits for: sends and chat actions, each one frame
acked (or nacked) by the server by its WhatsApp id (simulator/PROTOCOL.md). Mixed into
SimulatedConnection, whose socket, state and event queue it uses."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from runner.engines.event_stream import new_waiter
from runner.engines.link_preview import with_link_preview
from runner.engines.simulated import frames
from wagate.domain.chat_actions import ChatAction
from wagate.domain.events import EngineEvent, MessageAck
from wagate.errors import PermanentSendError, TransientSendError

if TYPE_CHECKING:
    from runner.engines.simulated.engine import SimulatedEngine

NOT_CONNECTED_RETRY_S = 5.0


class SimulatedOutgoing:
    __slots__ = ()
    _engine: SimulatedEngine
    _ws: aiohttp.ClientWebSocketResponse | None
    _connected: bool
    _pending: dict[str, asyncio.Future[MessageAck]]

    if TYPE_CHECKING:

        def _emit(self, event: EngineEvent, seq: int = 0) -> None: ...

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        if kind == "text" and self._connected:  # the runner's link preview, if asked for
            content = await with_link_preview(content, self._engine.egress_guard)
        message = {"t": "send", "id": wa_id, "to": to, "kind": kind, "content": content}
        return await self._acked(wa_id, message, timeout)

    async def act(self, wa_id: str, to: str, action: ChatAction, *, timeout: float) -> MessageAck:
        """Edits and revokes are messages (kind `edit`/`revoke`); reads and presences are
        frames of their own, acked by id like a send (simulator/PROTOCOL.md)."""
        return await self._acked(wa_id, frames.action(wa_id, to, action), timeout)

    async def _acked(self, wa_id: str, message: dict[str, Any], timeout: float) -> MessageAck:
        """Write one frame and wait for the server's ack (or nack) of `wa_id`."""
        ws = self._ws
        if ws is None or not self._connected or ws.closed:
            raise TransientSendError(
                "the session is not connected", retry_after=NOT_CONNECTED_RETRY_S
            )
        try:
            frame = frames.encode(message)
        except (TypeError, ValueError) as e:
            raise PermanentSendError(f"the content cannot be encoded: {e}") from e
        future = self._pending.get(wa_id)
        if future is None:
            future = self._pending[wa_id] = new_waiter()
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

    def _on_ack(self, frame: dict[str, Any]) -> None:
        wa_id = str(frame.get("id", ""))
        ack = MessageAck(wa_id, frames.timestamp(frame.get("ts")))
        future = self._pending.pop(wa_id, None)
        if future is not None and not future.done():
            future.set_result(ack)
        self._emit(ack)

    def _on_nack(self, frame: dict[str, Any]) -> None:
        future = self._pending.pop(str(frame.get("id", "")), None)
        if future is None or future.done():
            return
        future.set_exception(frames.nack_error(frame))
