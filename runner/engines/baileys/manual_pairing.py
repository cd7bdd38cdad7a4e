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
import secrets
import sys
from pathlib import Path

from runner.engines.baileys import BaileysEngine
from runner.engines.baileys.deps import ensure_node_modules
from runner.engines.whatsmeow.manual_pairing import Watch, say
from wagate.domain.events import AuthStateChanged, Connected, Disconnected


async def main(args: argparse.Namespace, state: bytes | None) -> bytes | None:
    """The four steps; returns the newest auth state."""
    engine = BaileysEngine(args.url)

    say("1. connect" + (" from the saved auth state" if state else " without credentials"))
    conn = engine.open("manual", state)
    watch = Watch(conn)
    await conn.connect()
    if args.pair_phone and state is None:
        await conn.request_pairing_code(args.pair_phone)
    connected = await watch.wait(Connected, timeout=180)
    if state is None:
        await watch.wait(AuthStateChanged, timeout=30)
    print(f"OK: linked as {connected.jid}")

    say("2. send one message twice with the same wagate id")
    wa_id = "3EB0" + secrets.token_hex(8).upper()
    first = await conn.send(wa_id, args.to, "text", {"body": "wagate manual test"}, timeout=60)
    again = await conn.send(wa_id, args.to, "text", {"body": "wagate manual test"}, timeout=60)
    assert first.wa_id == again.wa_id == wa_id
    print(f"OK: acked {wa_id} twice; the recipient must see the message ONCE")
    print(f"   waiting {args.listen:g}s for receipts and inbound messages (message the number)")
    await asyncio.sleep(args.listen)

    say("3. close and reconnect from the auth state alone (no QR expected)")
    saved = watch.state
    await conn.close()
    watch.task.cancel()
    conn = engine.open("manual", saved)
    watch = Watch(conn)
    await conn.connect()
    await watch.wait(Connected, timeout=60)
    print("OK: connected again without a QR")

    if args.logout:
        say("4. log out")
        await conn.logout()
        closed = await watch.wait(Disconnected, timeout=30)
        assert closed.reason == 401, closed
        print("OK: logged out (401); check the phone no longer lists the device")
    newest = watch.state or saved
    await conn.close()
    await engine.aclose()
    say("done")
    return newest


def save(path: Path, state: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(state)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.engines.baileys.manual_pairing")
    parser.add_argument("--to", required=True, help="a number to send the test message to")
    parser.add_argument("--pair-phone", help="link by pairing code for this number, not QR")
    parser.add_argument("--logout", action="store_true", help="unlink the device at the end")
    parser.add_argument("--listen", type=float, default=30.0, help="seconds to print events")
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
