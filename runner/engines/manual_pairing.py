"""The manual test of a real engine on a real phone (docs/engines.md, "Pairing a real phone"),
shared by `python -m runner.engines.whatsmeow.manual_pairing` and
`python -m runner.engines.baileys.manual_pairing`: the same four steps, driven through the engine
port exactly as the runner's supervisor drives it, each saying what it checks.

1. connect (without credentials: a QR in the terminal, or a pairing code with --pair-phone);
   link it from the phone (Settings → Linked devices) → Connected and an auth state.
2. send a text with a chosen wagate id to --to, then the same id again → the recipient sees it
   ONCE; receipts and messages sent to the linked number are printed as they come.
3. close, reconnect from the auth state alone → Connected without a QR (no re-scan).
4. with --logout: log out → Disconnected(401); the phone no longer lists the device.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from dataclasses import dataclass
from typing import TypeVar

import segno

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
from wagate.ports import EngineConnection, WhatsAppEngine

E = TypeVar("E")
SESSION = "manual"


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


@dataclass(frozen=True)
class ManualTest:
    to: str
    pair_phone: str | None = None
    logout: bool = False
    listen_s: float = 30.0
    wa_id_prefix: str = "3EB0"  # the message id wagate would choose for the test message
    settle_s: float = 0.0  # before step 3: time for the engine to capture its last auth state

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, *, wa_id_prefix: str = "3EB0", settle_s: float = 0.0
    ) -> ManualTest:
        """From the options `add_arguments` declares."""
        return cls(args.to, args.pair_phone, args.logout, args.listen, wa_id_prefix, settle_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every engine's manual test takes."""
    parser.add_argument("--to", required=True, help="a number to send the test message to")
    parser.add_argument("--pair-phone", help="link by pairing code for this number, not QR")
    parser.add_argument("--logout", action="store_true", help="unlink the device at the end")
    parser.add_argument("--listen", type=float, default=30.0, help="seconds to print events")


async def run_manual_test(
    engine: WhatsAppEngine, test: ManualTest, state: bytes | None = None
) -> bytes | None:
    """The four steps from `state` (None: link a new device); returns the newest auth state."""
    say("1. connect" + (" from the saved auth state" if state else " without credentials"))
    conn = engine.open(SESSION, state)
    watch = Watch(conn)
    await conn.connect()
    if test.pair_phone and state is None:
        await conn.request_pairing_code(test.pair_phone)
    connected = await watch.wait(Connected, timeout=180)
    if state is None:
        await watch.wait(AuthStateChanged, timeout=30)
    print(f"OK: linked as {connected.jid}")

    say("2. send one message twice with the same wagate id")
    wa_id = test.wa_id_prefix + secrets.token_hex(8).upper()
    body = {"body": "wagate manual test"}
    first = await conn.send(wa_id, test.to, "text", body, timeout=60)
    again = await conn.send(wa_id, test.to, "text", body, timeout=60)
    assert first.wa_id == again.wa_id == wa_id
    print(f"OK: acked {wa_id} twice; the recipient must see the message ONCE")
    print(f"   waiting {test.listen_s:g}s for receipts and inbound messages (message the number)")
    await asyncio.sleep(test.listen_s)

    say("3. close and reconnect from the auth state alone (no QR expected)")
    await asyncio.sleep(test.settle_s)
    saved = watch.state or state
    await conn.close()
    watch.task.cancel()
    conn = engine.open(SESSION, saved)
    watch = Watch(conn)
    await conn.connect()
    await watch.wait(Connected, timeout=60)
    print("OK: connected again without a QR")

    if test.logout:
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
