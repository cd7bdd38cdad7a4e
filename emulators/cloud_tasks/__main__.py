"""``python -m emulators.cloud_tasks --host 127.0.0.1 --port 8123``: run the emulator until
SIGTERM or SIGINT, announcing readiness with one line on stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from emulators.cloud_tasks import config as cfg
from emulators.cloud_tasks import oidc
from emulators.cloud_tasks.emulator import Emulator, Settings
from emulators.cloud_tasks.server import build_app

log = logging.getLogger("emulators.cloud_tasks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.cloud_tasks",
        description="wagate's Cloud Tasks emulator (REST API v2, real HTTP dispatch).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    parser.add_argument(
        "--name-retention",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long a finished or deleted task's name stays refused (default 3600)",
    )
    parser.add_argument(
        "--name-capacity",
        type=int,
        default=500_000,
        metavar="N",
        help="most spent task names remembered; the oldest are forgotten first (default 500000)",
    )
    parser.add_argument(
        "--min-dispatch-deadline",
        type=float,
        default=cfg.MIN_DISPATCH_DEADLINE_S,
        metavar="SECONDS",
        help="shortest dispatchDeadline accepted (Cloud Tasks: 15; lower it for fast tests)",
    )
    parser.add_argument(
        "--oidc-secret",
        default=oidc.DEFAULT_SECRET,
        help="HS256 key of the emulator-only OIDC tokens",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        metavar="N",
        help="size of the shared dispatch connection pool (default 4096)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        Settings(
            name_retention_s=args.name_retention,
            name_capacity=args.name_capacity,
            min_dispatch_deadline_s=args.min_dispatch_deadline,
            oidc_secret=args.oidc_secret,
            max_connections=args.max_connections,
        )
    )
    await emulator.start()
    # Bounded, so a target or client holding a connection open cannot stall a SIGTERM.
    runner = web.AppRunner(
        build_app(emulator), access_log=None, handle_signals=False, shutdown_timeout=3.0
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
        print(f"cloud-tasks-emulator listening on http://{args.host}:{args.port}", flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
