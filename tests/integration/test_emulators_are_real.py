"""Proof that the integration tests talk to real emulators: with an emulator stopped, the
adapters fail (as a wagate DependencyUnavailable, not a vendor error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.provision import environment
from devstack.stack import Stack, StackConfig
from wagate.adapters.firestore import FirestoreStore
from wagate.adapters.firestore import make_client as firestore_client
from wagate.adapters.storage import GcsBlobStore
from wagate.adapters.storage import make_client as storage_client
from wagate.adapters.tasks import CloudTasksQueue, SharedSecretAuth
from wagate.adapters.tasks import make_client as tasks_client
from wagate.config import Settings
from wagate.contracts import SessionDoc
from wagate.errors import DependencyUnavailable
from wagate.ports import TaskSpec

pytestmark = pytest.mark.integration


def test_adapters_fail_when_their_emulator_is_stopped(tmp_path: Path) -> None:
    stack = Stack(StackConfig(root=tmp_path))
    try:
        stack.start_emulators()
        with environment(stack.env):
            settings = Settings()
            store = FirestoreStore(firestore_client(settings.project_id))
            sessions = store.collection("sessions", SessionDoc)
            blobs = GcsBlobStore(storage_client(settings.project_id), settings.backup_bucket)
            queue = CloudTasksQueue(
                tasks_client(settings.tasks_endpoint),
                settings.project_id,
                settings.region,
                SharedSecretAuth("x"),
            )
            task = TaskSpec("wagate-s0-normal", "t-1", "http://127.0.0.1:9/x", b"{}")
            # Everything works while the emulators run...
            sessions.put(SessionDoc(id="s1", tenant_id="t", shard=0))
            blobs.put("a", b"1")
            queue.enqueue(task)
            # ...and fails, translated, once they are gone.
            for name in ("firestore", "gcs", "tasks"):
                stack.services[name].stop()
            with pytest.raises(DependencyUnavailable):
                sessions.get("s1")
            with pytest.raises(DependencyUnavailable):
                blobs.get("a")
            with pytest.raises(DependencyUnavailable):
                queue.enqueue(TaskSpec("wagate-s0-normal", "t-2", "http://127.0.0.1:9/x", b"{}"))
    finally:
        stack.stop()
