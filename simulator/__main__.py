"""Command line: `python -m simulator --host 127.0.0.1 --port 8070 [options]`."""

from __future__ import annotations

import argparse
import asyncio
import resource

from simulator.app import serve
from simulator.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8070)
    parser.add_argument("--receipt-delay-ms", type=float, default=defaults.receipt_delay_ms)
    parser.add_argument("--read-delay-ms", type=float, default=defaults.read_delay_ms)
    parser.add_argument("--qr-interval-s", type=float, default=defaults.qr_interval_s)
    parser.add_argument("--qr-attempts", type=int, default=defaults.qr_attempts)
    parser.add_argument("--idle-timeout-s", type=float, default=defaults.idle_timeout_s)
    parser.add_argument("--key-update-every", type=int, default=defaults.key_update_every)
    parser.add_argument("--history-limit", type=int, default=defaults.history_limit)
    return parser.parse_args(argv)


def _raise_fd_limit() -> None:
    """1,000 devices are 1,000 sockets: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings(
        receipt_delay_ms=args.receipt_delay_ms,
        read_delay_ms=args.read_delay_ms,
        qr_interval_s=args.qr_interval_s,
        qr_attempts=args.qr_attempts,
        idle_timeout_s=args.idle_timeout_s,
        key_update_every=args.key_update_every,
        history_limit=args.history_limit,
    )
    _raise_fd_limit()
    asyncio.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()
