"""Shared fixtures. Integration fixtures start the real emulators once per test session through
the same launcher as the demo (devstack.stack) and isolate tests by project, bucket and
queue names rather than by restarting anything."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.provision import environment
from devstack.stack import Stack, StackConfig


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("WAGATE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long run: set WAGATE_SLOW=1 (./dev test --slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local stack; each service starts when a test first needs it, and stops at the end."""
    stack = Stack(StackConfig(root=tmp_path_factory.mktemp("stack")))
    try:
        yield stack
    finally:
        stack.stop()


def _ensure(stack: Stack, name: str) -> None:
    service = stack.services.get(name)
    if service is not None and service.alive:
        return
    factory = {
        "firestore": stack.firestore_service,
        "gcs": stack.gcs_service,
        "tasks": stack.tasks_service,
        "simulator": stack.simulator_service,
    }[name]
    stack.start(factory())


@pytest.fixture(scope="session")
def firestore_emulator(stack: Stack) -> Stack:
    _ensure(stack, "firestore")
    return stack


@pytest.fixture(scope="session")
def gcs_emulator(stack: Stack) -> Stack:
    _ensure(stack, "gcs")
    return stack


@pytest.fixture(scope="session")
def tasks_emulator(stack: Stack) -> Stack:
    _ensure(stack, "tasks")
    return stack


@pytest.fixture(scope="session")
def emulators(firestore_emulator: Stack, gcs_emulator: Stack, tasks_emulator: Stack) -> Stack:
    """All three GCP emulators, with buckets and queues provisioned."""
    firestore_emulator.provision()
    return firestore_emulator


def _isolated(stack: Stack) -> Iterator[dict[str, str]]:
    env = dict(stack.env)
    project = f"t-{uuid.uuid4().hex[:12]}"
    env["GOOGLE_CLOUD_PROJECT"] = project
    env["WAGATE_PROJECT_ID"] = project
    with environment(env):
        yield env


@pytest.fixture
def firestore_env(firestore_emulator: Stack) -> Iterator[dict[str, str]]:
    """Emulator environment with a fresh Firestore project for this test."""
    yield from _isolated(firestore_emulator)


@pytest.fixture
def gcs_env(gcs_emulator: Stack) -> Iterator[dict[str, str]]:
    with environment(gcs_emulator.env):
        yield dict(gcs_emulator.env)


@pytest.fixture(params=["memory", "firestore"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Store: the in-memory adapter, then the Firestore emulator (fresh project each test)."""
    from wagate.adapters.firestore import FirestoreStore, make_client
    from wagate.adapters.memory import MemoryStore

    if request.param == "memory":
        yield MemoryStore()
    else:
        request.getfixturevalue("firestore_env")
        yield FirestoreStore(make_client(f"c-{uuid.uuid4().hex[:10]}"))


@pytest.fixture(params=["memory", "gcs"])
def blobs(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A BlobStore: the in-memory adapter, then fake-gcs-server (fresh bucket each test)."""
    from wagate.adapters.memory import MemoryBlobStore
    from wagate.adapters.storage import GcsBlobStore, make_client

    if request.param == "memory":
        yield MemoryBlobStore()
    else:
        request.getfixturevalue("gcs_env")
        bucket = GcsBlobStore(make_client("wagate-test"), f"b-{uuid.uuid4().hex[:12]}")
        bucket.ensure_bucket(versioning=True)
        yield bucket
