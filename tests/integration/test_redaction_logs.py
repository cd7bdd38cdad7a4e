"""No secret and no message body reaches a log line: known values (API key, admin key, webhook
secret, internal secret, backup key, a message text) are driven through every path — admin
calls, sends, failing and refused requests, a server error whose exception quotes them, the
sweeper's internal endpoints, and, with real processes, the runner pairing, sending, receiving
and the signed webhook — and every line the processes wrote is searched for them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devstack.provision import environment, provision
from devstack.stack import Stack, StackConfig
from tests.e2e.system import System, eventually
from tests.integration.api_client import Api
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.logs import get_logger

pytestmark = pytest.mark.integration


def secrets_of(stack: Stack) -> dict[str, str]:
    return {
        "admin key": stack.admin_key,
        "internal secret": stack.internal_secret,
        "backup key": stack.backup_keys.partition(":")[2],
    }


def assert_no_secret_in(output: str, secrets: dict[str, str]) -> None:
    leaked = [name for name, value in secrets.items() if value in output]
    assert not leaked, f"{leaked} leaked into the logs"


@pytest.fixture
def api(emulators: Stack, firestore_env: dict[str, str]) -> Iterator[Api]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    yield Api()


def test_no_secret_reaches_the_logs_of_the_functions(
    api: Api, emulators: Stack, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.app

    functions.app._gateway = None  # rebuilt by the next request: its logs go to capfd
    text = f"my card PIN is {uuid.uuid4().hex}"
    secrets = secrets_of(emulators)
    admin = api.admin_key

    created = api.tenant(webhook_url="https://hooks.example.com/in")
    key = created["api_key"]
    secrets.update({"api key": key, "webhook secret": created["webhook_secret"]})
    extra = api.call("POST", f"/v1/admin/tenants/{created['id']}/keys", admin).get_json()
    secrets["second api key"] = extra["api_key"]
    webhook = api.call(
        "PUT",
        f"/v1/admin/tenants/{created['id']}/webhook",
        admin,
        json={"url": "https://hooks.example.com/v2"},
    ).get_json()
    secrets["new webhook secret"] = webhook["secret"]
    secrets["message text"] = text
    revoked = api.call("DELETE", f"/v1/admin/tenants/{created['id']}/keys/{extra['key_id']}", admin)
    assert revoked.status_code == 204

    session = api.call("POST", "/v1/sessions", key, json={"name": "shop"}).get_json()
    path = f"/v1/sessions/{session['id']}/messages"
    sent = api.call(
        "POST", path, key, json={"to": "+15551234567", "content": {"type": "text", "body": text}}
    )
    assert sent.status_code == 202
    refused = [
        # a revoked key, a tenant key where the admin key belongs and the other way round
        api.call("GET", "/v1/sessions", extra["api_key"]),
        api.call("POST", "/v1/admin/tenants", key, json={"name": "x"}),
        api.call("GET", "/v1/sessions", admin),
        api.call("GET", "/v1/sessions", None, headers={"Authorization": f"Basic {admin}"}),
        # the text in an invalid request, a conflicting repeat and an oversized body
        api.call("POST", path, key, json={"to": text, "content": {"type": "text", "body": text}}),
        api.call(
            "POST", path, key, json={"to": "+15551234567", "content": {"type": "fax", "body": text}}
        ),
        api.call(
            "POST",
            path,
            key,
            json={"to": "+15551234567", "content": {"type": "text", "body": text}, text: 1},
        ),
        api.call("POST", path, key, data=text.encode() * 100_000, content_type="application/json"),
        api.call(
            "POST", path, key, data=f'{{"to": "{text}'.encode(), content_type="application/json"
        ),
        api.call(
            "POST",
            path,
            key,
            json={"to": "+15551234567", "content": {"type": "text", "body": text + "!"}},
            headers={"Idempotency-Key": sent.get_json()["id"]},
        ),
    ]
    repeat = api.call(
        "POST",
        path,
        key,
        json={"to": "+15551234567", "content": {"type": "text", "body": text}},
        headers={"Idempotency-Key": text},
    )
    assert repeat.status_code == 202
    conflict = api.call(
        "POST",
        path,
        key,
        json={"to": "+15551234567", "content": {"type": "text", "body": text + "?"}},
        headers={"Idempotency-Key": text},
    )
    assert [r.status_code for r in refused] + [conflict.status_code] == [
        401, 401, 401, 401, 400, 400, 400, 413, 400, 202, 409,
    ]  # fmt: skip

    # A bug whose exception message quotes every credential: the traceback is logged, scrubbed.
    def quoting_bug(*_: Any) -> Any:
        raise RuntimeError(" ".join(v for k, v in secrets.items() if k != "message text"))

    monkeypatch.setattr(functions.app.gateway().outbox, "get", quoting_bug)
    crashed = api.call("GET", f"/v1/messages/{sent.get_json()['id']}", key)
    assert crashed.status_code == 500 and b"RuntimeError" not in crashed.data

    sweeper = Api(target="sweeper")
    internal = emulators.internal_secret
    assert (
        sweeper.call("POST", "/sweep", headers={INTERNAL_TOKEN_HEADER: internal}).status_code == 200
    )
    wrong = sweeper.call("POST", "/sweep", headers={INTERNAL_TOKEN_HEADER: internal + "x"})
    assert wrong.status_code == 401

    # The capture works and redacts: a canary quoting everything comes out scrubbed.
    credentials = " ".join(v for k, v in secrets.items() if k != "message text")
    get_logger("canary").error("canary", note=credentials, body=text)
    output = capfd.readouterr()
    logged = output.out + output.err
    assert '"message": "canary"' in logged and logged.count('"message": "request"') >= 20
    assert '"message": "unhandled error"' in logged
    assert_no_secret_in(logged, secrets)


# ---------------------------------------------------------------- the runner, end to end


class Hooks(BaseHTTPRequestHandler):
    events: list[bytes] = []

    def do_POST(self) -> None:
        Hooks.events.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def processes(emulators: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The simulator, a runner, the api and the sweeper as processes on the shared emulators
    (a project of their own), started by the stack launcher."""
    project = f"redact-{uuid.uuid4().hex[:8]}"
    launcher = Stack(
        StackConfig(root=tmp_path, project=project, extra_env={"WAGATE_BACKUP_DEBOUNCE_S": "0.2"})
    )
    for name in ("firestore", "gcs", "tasks"):
        launcher.ports[name] = emulators.ports[name]
    provision(launcher.env, 1)
    try:
        launcher.start(
            launcher.simulator_service(),
            launcher.runner_service(0),
            launcher.function_service("api"),
            launcher.function_service("sweeper"),
        )
        with environment(launcher.env):
            yield launcher
    finally:
        launcher.stop()


def test_no_secret_reaches_the_logs_of_the_runner_and_functions(processes: Stack) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    system = System(processes)
    try:
        secrets = secrets_of(processes)
        created = system.tenant(webhook_url=f"http://127.0.0.1:{server.server_port}/hooks")
        key = created["api_key"]
        secrets.update({"api key": key, "webhook secret": created["webhook_secret"]})
        phone = f"+1555{int(time.time() * 1000) % 10_000_000:07d}"
        session = system.paired_session(key, phone)
        outbound, inbound = f"outbound {uuid.uuid4().hex}", f"inbound {uuid.uuid4().hex}"
        secrets.update({"sent text": outbound, "received text": inbound})
        sent = system.send(key, session["id"], "+16665550001", outbound)
        system.control(
            "inbound", to_phone=phone, **{"from": "+15557770000"}, content={"body": inbound}
        )
        system.wait_status(key, sent["id"], ("delivered", "read"))
        eventually(lambda: any(inbound.encode() in e for e in Hooks.events), timeout=30)
        assert system.call("GET", "/v1/sessions", secrets["admin key"]).status_code == 401
    finally:
        server.shutdown()
    processes.stop()  # flush and close every log
    logs = {
        name: (processes.logs / f"{name}.log").read_text(errors="replace")
        for name in ("runner-0", "api", "sweeper")
    }
    assert any(entry.get("message") == "lease won" for entry in _json_lines(logs["runner-0"]))
    assert '"message": "request"' in logs["api"] and '"message": "request"' in logs["sweeper"]
    for name, text in logs.items():
        assert_no_secret_in(text, {f"{k} ({name} log)": v for k, v in secrets.items()})


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines
