"""The egress guard at the edges, on the real emulators, with private addresses refused as in
the cloud (`WAGATE_EGRESS_ALLOW_PRIVATE=false`): the api answers 400 naming the field for a
webhook or media URL that points at an emulator's loopback port or the metadata server, and
writes nothing; the sweeper does not deliver a stored webhook to such a URL. One loopback
receiver is let through by `WAGATE_EGRESS_ALLOW_HOSTS`. Loopback only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import functions.app
from devstack.provision import environment
from tests.integration.api_client import Api
from wagate.adapters.egress import EgressGuard
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.config import Settings
from wagate.contracts import TenantDoc, WebhookEvent, WebhookTask
from wagate.domain.egress_policy import EgressPolicy

pytestmark = pytest.mark.integration


class Receiver(ThreadingHTTPServer):
    got: list[str]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.got.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = Receiver(("127.0.0.1", 0), Handler)
    server.got = []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cloud_rules(
    emulators: Any, firestore_env: dict[str, str], receiver: Receiver
) -> Iterator[dict[str, str]]:
    """The emulators' environment with the cloud's address rule; the receiver is listed."""
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    rules = {
        "WAGATE_EGRESS_ALLOW_PRIVATE": "false",
        "WAGATE_EGRESS_ALLOW_HOSTS": f"127.0.0.1:{receiver.server_address[1]}",
    }
    with environment(rules):
        functions.app._gateway = None
        yield {**firestore_env, **rules}
    functions.app._gateway = None


def emulator_urls(env: dict[str, str]) -> list[str]:
    """URLs at the stack's own loopback ports (Firestore, Cloud Tasks, fake GCS), in the
    spellings an attacker would try."""
    firestore = env["FIRESTORE_EMULATOR_HOST"].rsplit(":", 1)[1]
    tasks = env["WAGATE_TASKS_ENDPOINT"].rsplit(":", 1)[1]
    gcs = env["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1]
    return [
        f"http://127.0.0.1:{firestore}/v1/projects",
        f"http://localhost:{tasks}/v2/projects",
        f"http://[::ffff:127.0.0.1]:{gcs}/storage/v1/b",
        f"http://2130706433:{gcs}/storage/v1/b",  # 127.0.0.1 as one number
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
        "http://metadata.google.internal/computeMetadata/v1/",
    ]


def refused_field(response: Any) -> str:
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "egress_refused" and error["request_id"]
    fields: list[str] = [d["field"] for d in error["details"]]
    return fields[0]


def test_a_webhook_url_at_a_private_address_is_a_400_and_no_tenant_is_created(
    cloud_rules: dict[str, str],
) -> None:
    api = Api()
    for url in emulator_urls(cloud_rules):
        created = api.call(
            "POST", "/v1/admin/tenants", api.admin_key, json={"name": "evil", "webhook_url": url}
        )
        assert refused_field(created) == "webhook_url", url
    assert all(t.name != "evil" for t in functions.app.gateway().tenants.list())


def test_setting_a_webhook_to_a_private_address_is_a_400_and_the_old_one_stays(
    cloud_rules: dict[str, str], receiver: Receiver
) -> None:
    api = Api()
    allowed = f"http://127.0.0.1:{receiver.server_address[1]}/hooks"
    tenant = api.tenant(webhook_url=allowed)  # the listed host:port is accepted
    for url in emulator_urls(cloud_rules):
        answer = api.call(
            "PUT", f"/v1/admin/tenants/{tenant['id']}/webhook", api.admin_key, json={"url": url}
        )
        assert refused_field(answer) == "url", url
    stored = functions.app.gateway().tenants.get(tenant["id"])
    assert stored.webhook_url == allowed


def test_a_name_resolving_to_a_private_address_is_refused_at_the_api(
    cloud_rules: dict[str, str],
) -> None:
    """The api's look-up is advisory (delivery checks again); a name that resolves to a
    loopback address is refused already. The resolver is injected: no DNS query leaves."""
    api = Api()
    guard = functions.app.gateway().egress
    functions.app.gateway().egress = EgressGuard(guard.policy, lambda host, port: ["127.0.0.1"])
    answer = api.call(
        "POST",
        "/v1/admin/tenants",
        api.admin_key,
        json={"name": "rebinder", "webhook_url": "https://hooks.rebind.test/in"},
    )
    assert refused_field(answer) == "webhook_url"
    assert "loopback" in answer.get_json()["error"]["message"]


def test_a_media_url_at_a_private_address_is_a_400_and_no_message_is_stored(
    cloud_rules: dict[str, str],
) -> None:
    api = Api()
    key = api.tenant()["api_key"]
    session = api.call("POST", "/v1/sessions", key, json={"name": "shop"}).get_json()
    for url in emulator_urls(cloud_rules):
        sent = api.call(
            "POST",
            f"/v1/sessions/{session['id']}/messages",
            key,
            json={"to": "+15551234567", "content": {"type": "image", "url": url}},
        )
        assert refused_field(sent) == "content.url", url
    listing = api.call("GET", f"/v1/sessions/{session['id']}/messages", key).get_json()
    assert listing["items"] == []


def test_the_sweeper_does_not_deliver_a_stored_webhook_to_a_private_address(
    cloud_rules: dict[str, str], receiver: Receiver
) -> None:
    """A URL already stored (set before the rule, or a name that resolved publicly at the api)
    is checked again when the sweeper connects: refused, retried later, nothing sent."""
    api = Api()
    sweeper = Api(target="sweeper")
    g = functions.app.gateway()
    tenant = api.tenant(webhook_url=f"http://127.0.0.1:{receiver.server_address[1]}/hooks")
    secret = g.settings.internal_secret.get_secret_value()  # type: ignore[union-attr]
    event = WebhookEvent(
        id="evt_1",
        type="session.state",
        session_id="ses_1",
        created_at=datetime.now(UTC),
        data={"state": "connected"},
    )

    def deliver() -> Any:
        return sweeper.call(
            "POST",
            "/webhooks/deliver",
            headers={INTERNAL_TOKEN_HEADER: secret},
            data=WebhookTask(tenant_id=tenant["id"], event=event).model_dump_json(),
            content_type="application/json",
        )

    delivered = deliver()
    assert delivered.status_code == 200, delivered.get_json()
    assert receiver.got == ["/hooks"]
    # The tenant's stored URL now points at an emulator's port, bypassing the api's check.
    firestore_port = cloud_rules["FIRESTORE_EMULATOR_HOST"].rsplit(":", 1)[1]
    g.store.collection("tenants", TenantDoc).update(
        tenant["id"],
        lambda t: t.model_copy(update={"webhook_url": f"http://127.0.0.1:{firestore_port}/x"}),
    )
    refused = deliver()
    assert refused.status_code == 503
    assert "egress guard" in refused.get_json()["error"]["message"]
    assert receiver.got == ["/hooks"]


def test_the_local_stack_allows_loopback(firestore_env: dict[str, str]) -> None:
    """The demo and the other tests run on loopback: the stack's environment says so."""
    assert firestore_env["WAGATE_EGRESS_ALLOW_PRIVATE"] == "true"
    guard = EgressGuard.from_settings(Settings())
    assert guard.policy == EgressPolicy(https_only=False, allow_private=True)
