"""Manual test of the real engine on a real phone (docs/engines.md, "Pairing a real phone").

It drives the adapter exactly as the runner's supervisor does, step by step, and says what it
checks. It needs network access to WhatsApp and a phone with WhatsApp; nothing is stored outside
`--dir`, which holds the plaintext device store (delete it afterwards, or keep it to rerun from
step 3 without scanning again).

    python -m runner.engines.whatsmeow.manual_pairing --dir /tmp/wa-manual --to +15550100 \
        [--pair-phone +15550199] [--logout]

1. connect with no credentials → a QR in the terminal (or a pairing code with --pair-phone);
   link it from the phone (Settings → Linked devices) → Connected and an auth state.
2. send a text with a chosen wagate id to --to, then the same id again → one message arrives
   (the second send is answered from the sent-id ledger); wait for delivered/read receipts,
   reported under the wagate id. Messages sent to the linked number are printed as they come.
3. close, reconnect from the auth state only → Connected without a QR (no re-scan).
4. with --logout: log out → Disconnected(401); the phone no longer lists the device.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import TypeVar

import segno

from runner.engines.whatsmeow.engine import WhatsmeowEngine
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
from wagate.ports import EngineConnection

E = TypeVar("E")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


class Watch:
    """Reads a connection's events in the background; keeps the newest auth state."""

    def __init__(self, conn: EngineConnection) -> None:
        self.conn = conn
        self.state: bytes | None = None
        self.seen: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.conn.events():
            match event:
                case QrCode(code=code):
                    say("scan this QR with the phone (Settings → Linked devices → Link a device)")
                    segno.make(code).terminal(compact=True)
                case PairingCode(code=code):
                    say(f"enter this pairing code on the phone: {code}")
                case AuthStateChanged(state=state):
                    self.state = state
                    print(f"   auth state captured: {len(state)} bytes", flush=True)
                case InboundMessage() as m:
                    print(f"   inbound {m.wa_id} from {m.sender}: {m.kind} {m.content}", flush=True)
                case Receipt(wa_ids=ids, kind=kind):
                    print(f"   receipt {kind} for {ids}", flush=True)
                case MessageAck(wa_id=wa_id):
                    print(f"   server ack for {wa_id}", flush=True)
                case Disconnected(reason=reason, detail=detail):
                    print(f"   disconnected: {reason} {detail}", flush=True)
                case Connected(jid=jid):
                    print(f"   connected as {jid}", flush=True)
            await self.seen.put(event)

    async def wait(self, kind: type[E], timeout: float) -> E:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.seen.get()
                if isinstance(event, kind):
                    return event
                if isinstance(event, Disconnected) and kind is not Disconnected:
                    raise SystemExit(f"FAILED: disconnected ({event.reason}: {event.detail})")


async def main(args: argparse.Namespace) -> None:
    engine = WhatsmeowEngine(Path(args.dir), log_level=args.log_level)
    session = "manual"

    say("1. connect without credentials")
    conn = engine.open(session, None)
    watch = Watch(conn)
    await conn.connect()
    if args.pair_phone:
        await conn.request_pairing_code(args.pair_phone)
    connected = await watch.wait(Connected, timeout=180)
    await watch.wait(AuthStateChanged, timeout=30)
    print(f"OK: linked as {connected.jid}")

    say("2. send one message twice with the same wagate id")
    wa_id = "WGMANUAL" + secrets.token_hex(6).upper()
    first = await conn.send(wa_id, args.to, "text", {"body": "wagate manual test"}, timeout=60)
    again = await conn.send(wa_id, args.to, "text", {"body": "wagate manual test"}, timeout=60)
    assert first.wa_id == again.wa_id == wa_id
    print(f"OK: acked {wa_id}; the recipient must see the message ONCE")
    print(f"   waiting {args.listen:g}s for receipts and inbound messages (message the number)")
    await asyncio.sleep(args.listen)

    say("3. close and reconnect from the auth state alone (no QR expected)")
    await asyncio.sleep(engine.capture_interval_s * 2)  # let the last store change be captured
    state = watch.state
    await conn.close()
    watch.task.cancel()
    conn = engine.open(session, state)
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
    await conn.close()
    await engine.aclose()
    say("done")


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.engines.whatsmeow.manual_pairing")
    parser.add_argument("--dir", required=True, help="where the plaintext device store goes")
    parser.add_argument("--to", required=True, help="a number to send the test message to")
    parser.add_argument("--pair-phone", help="link by pairing code for this number, not QR")
    parser.add_argument("--logout", action="store_true", help="unlink the device at the end")
    parser.add_argument("--listen", type=float, default=30.0, help="seconds to print events")
    parser.add_argument("--log-level", default="WARNING")
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    cli()
