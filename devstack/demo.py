"""The README's first command: start the whole local system and show it working.

It creates a tenant with a webhook, pairs a simulated phone by QR (printed in the terminal),
sends text and media and follows each message to delivered/read, receives an inbound message
at a local signed webhook, then SIGKILLs the runner and shows the session coming back with no
new QR and the next message going out.

`--engine baileys` runs the same story on the real Baileys engine (Node workers) against the
WhatsApp-protocol fake (emulators/whatsapp) instead of the simulator; the fake has no media
server, so the second message is a text there.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
from rich.console import Console

from devstack.stack import Stack, StackConfig
from wagate.services.webhooks import SIGNATURE_HEADER, verify

console = Console(highlight=False)
T = TypeVar("T")
PHONE = "+15550100200"
CUSTOMER = "+15550300400"


def wait_for(check: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise TimeoutError("the demo waited too long; see the logs in .stack/logs")


class SimulatorPhones:
    """The phone and the customer's phone, played by the simulator's control API."""

    name = "WhatsApp simulator"
    media = True

    def __init__(self, stack: Stack) -> None:
        self.http = httpx.Client(base_url=stack.url["simulator"], timeout=30)

    def scan(self, code: str, phone: str) -> None:
        self.http.post("/control/scan", json={"qr": code, "phone": phone}).raise_for_status()

    def write(self, to_phone: str, sender: str, text: str) -> None:
        body = {"to_phone": to_phone, "from": sender, "content": {"body": text}}
        self.http.post("/control/inbound", json=body).raise_for_status()

    def pairings(self) -> int:
        return len(self.http.get("/control/pairings").json())

    def received(self, phone: str) -> list[str]:
        got = self.http.get(f"/control/received/{phone.lstrip('+')}").json()
        return [
            f"{m['kind']:6} {json.dumps(m['content'], ensure_ascii=False)}" for m in got["messages"]
        ]


class FakePhones:
    """The same, played by the WhatsApp-protocol fake (it records message ids, not content)."""

    name = "WhatsApp-protocol fake"
    media = False

    def __init__(self, stack: Stack) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['whatsapp']}", timeout=30)
        self.pairs = 0

    def _post(self, route: str, **body: Any) -> Any:
        r = self.http.post(f"/_fake/{route}", json=body)
        r.raise_for_status()
        return r.json()

    def scan(self, code: str, phone: str) -> None:
        self._post("scan", qr=code, phone=phone)
        self.pairs += 1

    def write(self, to_phone: str, sender: str, text: str) -> None:
        wa_id = f"3EB0DEMO{int(time.time() * 1000)}"
        self._post("inbound", to_phone=to_phone, sender=sender, text=text, wa_id=wa_id)

    def pairings(self) -> int:
        return self.pairs + int(self._post("stats")["pairing"])  # scanned + showing a QR now

    def received(self, phone: str) -> list[str]:
        return [f"id {i}" for i in self._post("received", recipient=phone)["ids"]]


Phones = SimulatorPhones | FakePhones


class Hooks(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Hooks.received.append((self.headers.get(SIGNATURE_HEADER, ""), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def step(text: str) -> None:
    console.print(f"\n[bold cyan]▶ {text}[/]")


def run(engine: str = "simulator") -> None:
    stack = Stack(
        StackConfig(
            simulator_args=("--receipt-delay-ms=400", "--read-delay-ms=1200"), engine=engine
        )
    )
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    try:
        step(
            "Starting the local system (Firestore emulator, fake-gcs-server, Cloud Tasks "
            "emulator, WhatsApp simulator, runner, api + sweeper functions)"
            + (", the WhatsApp-protocol fake and the Baileys engine" if engine == "baileys" else "")
        )
        started = time.monotonic()
        stack.start_all()
        console.print(f"  up in {time.monotonic() - started:.1f}s; logs in {stack.logs}")
        for name, url in stack.url.items():
            console.print(f"  {name:10} {url}")
        console.print(f"  {'runner-0':10} {stack.runner_url(0)}")
        phones: Phones = FakePhones(stack) if engine == "baileys" else SimulatorPhones(stack)
        demo(stack, hooks.server_port, phones)
        console.print("\n[bold green]✔ the demo finished: every message delivered exactly once[/]")
    finally:
        step("Stopping everything")
        hooks.shutdown()
        stack.stop()


def demo(stack: Stack, hooks_port: int, phones: Phones) -> None:
    api = httpx.Client(base_url=stack.url["api"], timeout=30)

    step("Creating a tenant (admin key) with a webhook")
    created = api.post(
        "/v1/admin/tenants",
        headers={"Authorization": f"Bearer {stack.admin_key}"},
        json={
            "name": "Acme Shop",
            "webhook_url": f"http://127.0.0.1:{hooks_port}/hooks",
            # The demo polls for the QR code ten times a second: above the default 5 per 5 min.
            "limits": {
                "pacing_per_second": 5,
                "pacing_burst": 10,
                "qr_fetches_per_5_minutes": 1000,
            },
        },
    ).json()
    key, secret = created["api_key"], created["webhook_secret"]
    console.print(f"  tenant {created['id']}, API key {key[:16]}… (shown once)")
    auth = {"Authorization": f"Bearer {key}"}

    step("Creating a session and showing its QR code")
    session = api.post("/v1/sessions", headers=auth, json={"name": "support line"}).json()
    sid = session["id"]

    def qr_text() -> str | None:
        r = api.get(f"/v1/sessions/{sid}/qr", headers=auth, params={"format": "text"})
        return r.text if r.status_code == 200 else None

    console.print(wait_for(qr_text))
    code = api.get(f"/v1/sessions/{sid}/qr", headers=auth, params={"format": "json"}).json()["code"]

    step(f"The phone {PHONE} scans it")
    phones.scan(code, PHONE)

    def session_connected() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/v1/sessions/{sid}", headers=auth).json()
        return current if current["state"] == "connected" else None

    connected = wait_for(session_connected)
    console.print(f"  connected as {connected['jid']}")
    wait_for(lambda: api.get(f"/v1/sessions/{sid}", headers=auth).json()["last_backup_at"])
    console.print("  credentials backed up (AES-256-GCM, Cloud Storage)")

    step(f"Sending a text and {'an image' if phones.media else 'a link'}; following each to read")
    contents = [
        {"type": "text", "body": "Your order #1042 has shipped 📦"},
        {"type": "image", "url": "https://example.com/label.png", "caption": "shipping label"}
        if phones.media
        else {"type": "text", "body": "Tracking: https://example.com/track/1042"},
    ]
    ids: list[str] = []
    for content in contents:
        r = api.post(
            f"/v1/sessions/{sid}/messages",
            headers={**auth, "Idempotency-Key": f"demo-{len(ids)}"},
            json={"to": CUSTOMER, "content": content},
        )
        r.raise_for_status()
        ids.append(r.json()["id"])
        console.print(f"  202 accepted {r.json()['id']} ({content['type']})")
    follow(api, auth, ids)

    step("The customer writes back; the webhook receives it, signed")
    phones.write(PHONE, CUSTOMER, "Thanks! When will it arrive?")

    def inbound() -> tuple[str, bytes] | None:
        return next(((s, b) for s, b in Hooks.received if b'"message.received"' in b), None)

    signature, body = wait_for(inbound)
    event = json.loads(body)
    console.print(f"  webhook event {event['id']}: {event['data']['content']}")
    console.print(f"  signature valid: {verify(secret, signature, body)}")

    step("Crash: SIGKILL the runner, start a new one, send right away")
    runner = stack.services["runner-0"]
    killed = time.monotonic()
    runner.kill()
    stack.start(stack.runner_service(0))
    r = api.post(
        f"/v1/sessions/{sid}/messages",
        headers=auth,
        json={"to": CUSTOMER, "content": {"type": "text", "body": "Arriving tomorrow!"}},
    )
    mid = r.json()["id"]
    console.print(f"  202 accepted {mid} while the new runner waits for the dead one's lease")
    wait_for(
        lambda: (
            api.get(f"/v1/messages/{mid}", headers=auth).json()["status"]
            in ("sent", "delivered", "read")
        ),
        timeout=60,
    )
    console.print(f"  sending again {time.monotonic() - killed:.1f}s after the kill — no QR scan")
    console.print(f"  pairing requests at the {phones.name}: {phones.pairings()}")
    follow(api, auth, [mid])

    received = phones.received(CUSTOMER)
    console.print(f"\n  the customer's phone received {len(received)} messages:")
    for line in received:
        console.print(f"    {line}")
    if len(received) != 3:
        raise SystemExit(f"expected 3 messages at the recipient, got {len(received)}")


def follow(api: httpx.Client, auth: dict[str, str], ids: list[str]) -> None:
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(seen.get(i) != "read" for i in ids):
        for mid in ids:
            status = api.get(f"/v1/messages/{mid}", headers=auth).json()["status"]
            if seen.get(mid) != status:
                seen[mid] = status
                console.print(f"  {mid} → {status}")
        time.sleep(0.1)
    if any(seen.get(i) != "read" for i in ids):
        raise SystemExit("a message did not reach 'read' in time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo")
    parser.add_argument("--engine", choices=["simulator", "baileys"], default="simulator")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        run(args.engine)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
