"""Running the operator CLI the way operators do: the installed `wagate` entry point in a
subprocess (a few tests), or the same Typer app in-process (faster), against the whole local
system (emulators, simulator, runner, functions).

The system is started once for this package and stopped when its tests are done (the e2e
`system` fixture lives in tests/e2e/conftest.py, out of reach of this package; importing it
here would make pytest keep a second, session-long copy). Tests that need no runner get a
project and a backup bucket of their own on its emulators."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devstack.provision import environment
from devstack.stack import StackConfig, generate_backup_keys, running
from tests.e2e.system import System
from wagate.adapters.firestore import FirestoreStore
from wagate.adapters.firestore import make_client as firestore_client
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.storage import GcsBlobStore
from wagate.adapters.storage import make_client as storage_client
from wagate_cli.main import app

WAGATE = Path(sys.executable).with_name("wagate")


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(env: dict[str, str], *args: str, timeout: float = 120) -> Ran:
    """The real entry point, in a subprocess (environment = exactly `env` + PATH)."""
    done = subprocess.run(
        [str(WAGATE), *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def invoke(env: dict[str, str], *args: str) -> Ran:
    """The same app in-process (Typer's runner), with `env` as the environment."""
    with environment(env):
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="package")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    config = StackConfig(
        root=tmp_path_factory.mktemp("cli"), extra_env={"WAGATE_BACKUP_DEBOUNCE_S": "0.2"}
    )
    with running(config) as stack:
        yield System(stack)


@dataclass
class ControlSink:
    """Stands in for a runner's /tasks/control: records what the Cloud Tasks emulator posts."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def control_sink() -> Iterator[ControlSink]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append({"path": self.path, **json.loads(body or b"{}")})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield ControlSink(f"http://127.0.0.1:{server.server_port}", received)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Project:
    """A project and backup bucket of one test's own on the system's emulators."""

    env: dict[str, str]
    store: FirestoreStore
    bucket: GcsBlobStore
    keyring: StaticKeyRing


@pytest.fixture
def project(system: System, control_sink: ControlSink) -> Project:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    keys = generate_backup_keys()
    env = {
        **system.stack.env,
        "GOOGLE_CLOUD_PROJECT": name,
        "WAGATE_PROJECT_ID": name,
        "WAGATE_BACKUP_BUCKET": f"b-{name}",
        "WAGATE_BACKUP_KEYS": keys,
        "WAGATE_RUNNER_URLS": control_sink.url,
        "WAGATE_LOG_FORMAT": "console",
    }
    system.stack.provision_project(name)
    with environment(env):
        bucket = GcsBlobStore(storage_client(name), f"b-{name}")
        bucket.ensure_bucket(versioning=True)
        store = FirestoreStore(firestore_client(name))
    return Project(env, store, bucket, StaticKeyRing(keys))
