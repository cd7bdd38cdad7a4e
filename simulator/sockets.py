"""The websocket endpoint: one socket per linked device, framed JSON in both directions.

Each socket costs one reading task (aiohttp's request handler) and one writing task. The world
queues encoded frames with `push` from plain callbacks (timers, other sockets' frames); the
writer sends whatever has accumulated as one websocket message — a single frame, or a JSON
array of frames when several are waiting — which keeps thousands of frames per second cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import WSMsgType, web

from simulator.model import Device, Pairing
from simulator.protocol import close_code
from simulator.world import World

WORLD: web.AppKey[World] = web.AppKey("world", World)
MAX_FRAME_BYTES = 32 * 1024 * 1024  # media travels as URLs, but leave room for inline data
CLOSE_GRACE_S = 5.0


class Connection:
    """One device socket; implements world.Link."""

    __slots__ = (
        "_close_code",
        "_close_detail",
        "_out",
        "_request",
        "_wakeup",
        "_ws",
        "device",
        "frozen_until",
        "last_seen",
        "pairing",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request
        self._out: list[str] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._close_code: int | None = None
        self._close_detail = ""
        self.device: Device | None = None
        self.pairing: Pairing | None = None
        self.last_seen = time.monotonic()
        self.frozen_until = 0.0

    # ------------------------------------------------------------ world.Link

    def push(self, data: str) -> None:
        if self._close_code is not None:
            return
        self._out.append(data)
        self._wake()

    def close(self, code: int, detail: str) -> None:
        if self._close_code is not None:
            return
        self._close_code = code
        self._close_detail = detail
        self._wake()

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()

    # ------------------------------------------------------------ writing

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def write_loop(self) -> None:
        ws = self._ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                frozen_s = self.frozen_until - time.monotonic()
                if frozen_s > 0:
                    await asyncio.sleep(frozen_s)
                    continue
                if self._out:
                    batch, self._out = self._out, []
                    await ws.send_str(batch[0] if len(batch) == 1 else f"[{','.join(batch)}]")
                    continue
                if self._close_code is not None:
                    # Control frames carry at most 123 bytes of reason.
                    reason = self._close_detail.encode()[:120]
                    await ws.close(code=self._close_code, message=reason)
                    return
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
        except (ConnectionError, RuntimeError):
            return  # the peer went away; the reading side notices and cleans up


def _hello_of(text: str) -> tuple[object, int] | None:
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("t") != "hello":
        return None
    acked = frame.get("acked", 0)
    return frame.get("creds"), acked if isinstance(acked, int) else 0


async def handle(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    if world.refusing():
        raise web.HTTPServiceUnavailable(text="connections are refused for now")
    # autoping off: pings are answered here, so a frozen socket can stay silent.
    ws = web.WebSocketResponse(autoping=False, max_msg_size=MAX_FRAME_BYTES, compress=False)
    await ws.prepare(request)
    conn = Connection(ws, request)
    writer = asyncio.create_task(conn.write_loop())
    world.attach(conn)
    try:
        try:
            first = await ws.receive(timeout=world.settings.hello_timeout_s)
        except TimeoutError:
            conn.close(close_code(408), "no hello")
            return ws
        hello = _hello_of(first.data) if first.type is WSMsgType.TEXT else None
        if hello is None:
            conn.close(close_code(500), "the first frame must be a hello")
            return ws
        conn.last_seen = time.monotonic()
        world.hello(conn, hello[0], hello[1])
        async for msg in ws:
            conn.last_seen = time.monotonic()
            if msg.type is WSMsgType.TEXT:
                _dispatch(world, conn, msg.data)
            elif msg.type is WSMsgType.PING:
                if conn.frozen_until <= conn.last_seen:
                    await ws.pong(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    finally:
        world.disconnected(conn)
        if conn.closing:
            # We asked to close: let the writer flush and send the close frame.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_GRACE_S)
        writer.cancel()
    return ws


def _dispatch(world: World, conn: Connection, text: str) -> None:
    if conn.frozen_until > conn.last_seen:
        return  # a black-holed socket: what it sends is lost
    try:
        data = json.loads(text)
    except ValueError:
        conn.push('{"t":"error","code":"bad_json","message":"frames are JSON"}')
        return
    if isinstance(data, list):
        for frame in data:
            world.on_frame(conn, frame)
    else:
        world.on_frame(conn, data)
