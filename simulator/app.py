"""Builds the simulator's aiohttp application and serves it until SIGTERM/SIGINT.

One process, one event loop: the device websockets (`/ws`), the control API (`/control/*`)
and `/healthz`. A background task closes sockets that stopped pinging.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from simulator import control, group_control, media, sockets
from simulator.protocol import GOING_AWAY, WS_PATH
from simulator.settings import Settings
from simulator.sockets import WORLD
from simulator.world import World

BANNER = "whatsapp-simulator listening on http://{host}:{port}"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _idle_sweeper(world: World) -> None:
    while True:
        # At most 1 s, so a shorter idle timeout set at run time takes effect promptly.
        await asyncio.sleep(max(0.05, min(1.0, world.settings.idle_timeout_s / 4)))
        world.sweep_idle()


async def _background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_idle_sweeper(app[WORLD]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    world = app[WORLD]
    for link in list(world.links):
        link.close(GOING_AWAY, "simulator shutting down")
    await asyncio.sleep(0)


def build_app(settings: Settings | None = None) -> web.Application:
    app = web.Application(client_max_size=sockets.MAX_FRAME_BYTES)
    app[WORLD] = World(settings)
    app.router.add_get("/healthz", healthz)
    app.router.add_get(WS_PATH, sockets.handle)
    control.add_routes(app)
    media.add_routes(app)
    group_control.add_routes(app)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_close_sockets)
    return app


async def serve(host: str, port: int, settings: Settings | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close every socket (1001) and exit."""
    runner = web.AppRunner(build_app(settings), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    print(BANNER.format(host=host, port=port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
