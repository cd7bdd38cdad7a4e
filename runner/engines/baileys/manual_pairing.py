"""Manual test of the Baileys engine on a real phone (docs/engines.md, "Pairing a real phone"): the
same four steps as the whatsmeow one, through `BaileysEngine` against WhatsApp's servers. Nothing
is written to disk except, with --state, the plaintext auth state (delete it afterwards).

    python -m runner.engines.baileys.manual_pairing --to +15550100 [--pair-phone +15550199] \
        [--logout] [--state /tmp/wa-baileys.json]

1. connect with no credentials → a QR in the terminal (or a pairing code with --pair-phone) →
   Connected and an auth state. 2. one message sent twice with the same wagate id → the recipient
   sees it ONCE (Baileys passes the id; WhatsApp keeps one message per id), receipts follow.
3. close, reconnect from the auth state alone → Connected without a QR. 4. --logout → 401.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from runner.engines.baileys import BaileysEngine
from runner.engines.baileys.deps import ensure_node_modules
from runner.engines.manual_pairing import ManualTest, add_arguments, run_manual_test


async def main(args: argparse.Namespace, state: bytes | None) -> bytes | None:
    """The four steps (runner.engines.manual_pairing); returns the newest auth state."""
    return await run_manual_test(BaileysEngine(args.url), ManualTest.from_args(args), state)


def save(path: Path, state: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(state)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.engines.baileys.manual_pairing")
    add_arguments(parser)
    parser.add_argument("--state", help="keep the plaintext auth state here (mode 0600)")
    parser.add_argument("--url", default="wss://web.whatsapp.com/ws/chat")
    args = parser.parse_args()
    ensure_node_modules()
    path = Path(args.state) if args.state else None
    state = path.read_bytes() if path and path.exists() else None
    try:
        newest = asyncio.run(main(args, state))
        if path and newest:
            save(path, newest)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    cli()
