"""The Cloud Tasks emulator under test: one subprocess on a free loopback port for this
directory (short dispatch deadlines allowed so timeouts are quick to provoke), the official
client on its REST transport, a recording target, and a fresh queue per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from google.cloud import tasks_v2

from tests.emulators.harness import EmulatorProcess, Target, make_client, start_emulator

PROJECT = "emu-test"
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"

QueueFactory = Callable[..., str]


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = start_emulator(
        tmp_path_factory.mktemp("cloud-tasks"),
        "--min-dispatch-deadline=0.1",
        "--log-level=DEBUG",
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def client(emulator: EmulatorProcess) -> tasks_v2.CloudTasksClient:
    return make_client(emulator.url)


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    server = Target()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_queue(client: tasks_v2.CloudTasksClient) -> QueueFactory:
    """Create a queue with a unique name; keyword arguments become Queue fields."""

    def create(**fields: object) -> str:
        name = f"{PARENT}/queues/q-{uuid.uuid4().hex[:12]}"
        client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name, **fields))
        return name

    return create


@pytest.fixture
def path() -> str:
    """A target path of this test's own, so hits never mix between tests."""
    return f"/t/{uuid.uuid4().hex[:12]}"
