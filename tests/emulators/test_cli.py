"""The emulator as launchers see it: a ready line, a health check, a clean stop on SIGTERM,
and the real 15 s minimum dispatch deadline unless told otherwise."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from tests.emulators.conftest import PARENT
from tests.emulators.harness import http_task, make_client, start_emulator

pytestmark = pytest.mark.integration


def test_ready_line_health_check_and_clean_sigterm(tmp_path: Path) -> None:
    emulator = start_emulator(tmp_path)
    try:
        host_port = emulator.url.removeprefix("http://")
        assert (
            emulator.ready_line.strip() == f"cloud-tasks-emulator listening on http://{host_port}"
        )
        with urllib.request.urlopen(f"{emulator.url}/healthz", timeout=5) as response:
            assert response.status == 200

        client = make_client(emulator.url)
        name = f"{PARENT}/queues/defaults"
        client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name))
        with pytest.raises(gexc.BadRequest):  # Cloud Tasks' own minimum: 15 s
            client.create_task(parent=name, task=http_task("http://127.0.0.1:9/x", deadline=5))
        client.create_task(parent=name, task=http_task("http://127.0.0.1:9/x", deadline=15))
    finally:
        code = emulator.stop(timeout=10)
    assert code == 0
    assert "Traceback" not in emulator.log_path.read_text()
