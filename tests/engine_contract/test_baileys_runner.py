"""The runner process with WAGATE_ENGINE=baileys against the local stack's emulators and the
WhatsApp-protocol fake: a session pairs by the QR the runner stores on its document, its auth
state reaches the encrypted backup, and after a SIGKILL of the runner (workers included) a new
runner restores it from that backup and connects without a QR."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from devstack.processes import LOCALHOST, Service, free_port
from devstack.stack import Stack
from tests.engine_contract.baileys_kit import FakeNetwork
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.contracts import SessionDoc
from wagate.domain.sessions import SessionState

pytestmark = pytest.mark.integration


def fake(url: str, route: str, **body: object) -> dict[str, object]:
    async def call() -> dict[str, object]:
        async with aiohttp.ClientSession() as http:
            return await FakeNetwork(url, http).call(route, **body)

    return asyncio.run(call())


def wait_for(what: str, check: Callable[[], bool], service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.alive, f"the runner exited:\n{service.tail(40)}"
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout}s:\n{service.tail(40)}")


def baileys_runner(
    name: str, emulators: Stack, project: str, fake_url: str, tmp_path: Path
) -> Service:
    """A runner process of shard 0 on the Baileys engine, against the fake at `fake_url`."""
    port = free_port()
    return Service(
        name,
        [sys.executable, "-m", "runner"],
        f"http://{LOCALHOST}:{port}/healthz",
        tmp_path / f"{name}.log",
        {
            **emulators._child_env(),
            "PORT": str(port),
            "GOOGLE_CLOUD_PROJECT": project,
            "WAGATE_PROJECT_ID": project,
            "WAGATE_SHARD_ID": "0",
            "WAGATE_ENGINE": "baileys",
            "WAGATE_BAILEYS_URL": fake_url.replace("http", "ws") + "/ws/chat",
            "WAGATE_BAILEYS_MEDIA_URL": fake_url,  # the fake's media host (media.mjs)
            "WAGATE_STATE_DIR": str(tmp_path / "state"),
            "WAGATE_PERSISTENCE": "cloud",  # the backup in Cloud Storage is all there is
        },
    )


def test_a_paired_session_survives_a_runner_sigkill_without_a_qr(
    emulators: Stack, firestore_env: dict[str, str], whatsapp_fake_url: str, tmp_path: Path
) -> None:
    fake(whatsapp_fake_url, "reset")
    project = firestore_env["WAGATE_PROJECT_ID"]
    emulators.provision_project(project)
    sessions = FirestoreStore(make_client(project)).collection("sessions", SessionDoc)
    session_id = f"ses_{uuid.uuid4().hex[:10]}"
    sessions.create(
        SessionDoc(id=session_id, tenant_id="ten_baileys", shard=0, state=SessionState.CONNECTING)
    )

    def doc() -> SessionDoc:
        found = sessions.get(session_id)
        assert found is not None
        return found

    def runner(name: str) -> Service:
        return baileys_runner(name, emulators, project, whatsapp_fake_url, tmp_path)

    first = runner("runner-baileys-1")
    first.start()
    try:
        first.wait_ready()
        wait_for("a QR on the session", lambda: doc().qr is not None, first, 60)
        fake(whatsapp_fake_url, "scan", qr=doc().qr, phone="+15550800001")
        wait_for("connected", lambda: doc().state == SessionState.CONNECTED, first, 60)
        assert "15550800001" in (doc().jid or "")
        time.sleep(3)  # the debounced backup of the logged-in state
    finally:
        first.kill()  # SIGKILL of the process group: the runner and its Node workers
    # The fake sees the socket close; nothing of the first runner is left holding it.
    wait_for_closed = time.monotonic() + 15
    while fake(whatsapp_fake_url, "stats")["connected"] != 0:
        assert time.monotonic() < wait_for_closed, "the killed runner's socket is still open"
        time.sleep(0.3)

    second = runner("runner-baileys-2")
    second.start()
    try:
        second.wait_ready()
        wait_for(
            "connected again from the backup",
            lambda: (
                fake(whatsapp_fake_url, "stats")["connected"] == 1
                and doc().state == SessionState.CONNECTED
            ),
            second,
            90,
        )
        assert doc().qr is None
        assert fake(whatsapp_fake_url, "stats")["pairing"] == 0  # no device asked for a QR
    finally:
        second.stop()
