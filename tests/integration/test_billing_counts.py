"""The billed-operation counts (wagate/adapters/billing.py) against the real Firestore
emulator: each call is counted in the units Google bills."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.factories import text_message
from wagate.adapters import billing
from wagate.contracts import MessageDoc
from wagate.domain.messages import MessageStatus
from wagate.ports import Where

pytestmark = pytest.mark.integration


def message(doc_id: str) -> MessageDoc:
    return text_message(doc_id, tenant_id="t1", session_id="s1", to="+15550001")


def test_reads_writes_and_deletes_are_counted_as_billed(
    firestore_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wagate.adapters.firestore import FirestoreStore, make_client

    monkeypatch.setenv(billing.COUNT_ENV, str(tmp_path))
    monkeypatch.setattr(billing, "_counts", billing.Counter())
    store = FirestoreStore(make_client(f"c-{uuid.uuid4().hex[:10]}"))
    repo = store.collection("messages", MessageDoc)
    repo.create(message("a"))  # 1 write
    repo.put(message("b"))  # 1 write
    assert repo.get("a") is not None  # 1 read
    repo.get_many(["a", "b", "missing"])  # 3 reads (a missing document is billed too)
    assert len(repo.query([Where("tenant_id", "==", "t1")])) == 2  # 2 reads
    assert repo.query([Where("tenant_id", "==", "nobody")]) == []  # 1 read (the minimum)
    assert repo.count() == 2  # 1 read (up to 1,000 index entries)
    repo.update("a", lambda d: d.model_copy(update={"attempts": 1}))  # 1 read, 1 write
    store.patch_many([("messages", "b", {"status": MessageStatus.SENT})], [("messages", "a")])
    counts = dict(billing._counts)
    assert counts == {
        "firestore.write|messages|create:accepted": 1,
        "firestore.write|messages|set:accepted": 1,
        "firestore.write|messages|update": 1,  # only the changed field is sent
        "firestore.read|messages|get": 5,
        "firestore.read|messages|query": 3,
        "firestore.read|messages|count": 1,
        "firestore.write|messages|update:sent": 1,
        "firestore.delete|messages|delete": 1,
    }, counts
