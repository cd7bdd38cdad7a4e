"""The README's first command: start the whole local system and show it working.

It creates a tenant with a webhook, pairs a simulated phone by QR (printed in the terminal),
sends text and media and follows each message to delivered/read, receives an inbound message
at a local signed webhook, then SIGKILLs the runner and shows the session coming back with no
new QR and the next message going out.
"""

from __future__ import annotations

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

from wagate.devstack.stack import Stack, StackConfig
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


def run() -> None:
    stack = Stack(StackConfig(simulator_args=("--receipt-delay-ms=400", "--read-delay-ms=1200")))
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    try:
        step(
            "Starting the local system (Firestore emulator, fake-gcs-server, Cloud Tasks "
            "emulator, WhatsApp simulator, runner, api + sweeper functions)"
        )
        started = time.monotonic()
        stack.start_all()
        console.print(f"  up in {time.monotonic() - started:.1f}s; logs in {stack.logs}")
        for name, url in stack.url.items():
            console.print(f"  {name:10} {url}")
        console.print(f"  {'runner-0':10} {stack.runner_url(0)}")
        demo(stack, hooks.server_port)
        console.print("\n[bold green]✔ the demo finished: every message delivered exactly once[/]")
    finally:
        step("Stopping everything")
        hooks.shutdown()
        stack.stop()


def demo(stack: Stack, hooks_port: int) -> None:
    api = httpx.Client(base_url=stack.url["api"], timeout=30)
    sim = httpx.Client(base_url=stack.url["simulator"], timeout=30)

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
    sim.post("/control/scan", json={"qr": code, "phone": PHONE}).raise_for_status()

    def session_connected() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/v1/sessions/{sid}", headers=auth).json()
        return current if current["state"] == "connected" else None

    connected = wait_for(session_connected)
    console.print(f"  connected as {connected['jid']}")
    wait_for(lambda: api.get(f"/v1/sessions/{sid}", headers=auth).json()["last_backup_at"])
    console.print("  credentials backed up (AES-256-GCM, Cloud Storage)")

    step("Sending a text and an image; following each to read")
    contents = [
        {"type": "text", "body": "Your order #1042 has shipped 📦"},
        {"type": "image", "url": "https://example.com/label.png", "caption": "shipping label"},
    ]
    ids = []
    for content in contents:
        r = api.post(
            f"/v1/sessions/{sid}/messages",
            headers={**auth, "Idempotency-Key": f"demo-{content['type']}"},
            json={"to": CUSTOMER, "content": content},
        )
        r.raise_for_status()
        ids.append(r.json()["id"])
        console.print(f"  202 accepted {r.json()['id']} ({content['type']})")
    follow(api, auth, ids)

    step("The customer writes back; the webhook receives it, signed")
    sim.post(
        "/control/inbound",
        json={
            "to_phone": PHONE,
            "from": CUSTOMER,
            "content": {"body": "Thanks! When will it arrive?"},
        },
    )

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
    pairings = sim.get("/control/pairings").json()
    console.print(f"  pairing requests at the simulator: {len(pairings)}")
    follow(api, auth, [mid])

    received = sim.get(f"/control/received/{CUSTOMER.lstrip('+')}").json()
    console.print(f"\n  the customer's phone received {received['count']} messages:")
    for m in received["messages"]:
        console.print(f"    {m['kind']:6} {json.dumps(m['content'], ensure_ascii=False)}")
    if received["count"] != 3:
        raise SystemExit(f"expected 3 messages at the recipient, got {received['count']}")


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


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        run()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
