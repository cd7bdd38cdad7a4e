"""SharedCommits: concurrent accept writes share one commit, and each request still gets its own
answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from wagate.adapters.memory import MemoryStore
from wagate.contracts import Document, IdempotencyDoc
from wagate.errors import AlreadyExists, DependencyUnavailable
from wagate.services.commits import SharedCommits


class GatedStore(MemoryStore):
    """Holds its first commit until `gate` opens, and records what each commit held."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.inside = threading.Event()
        self.commits: list[list[str]] = []
        self.fail_groups_with: BaseException | None = None

    def create_together(self, docs: Sequence[tuple[str, Document]]) -> None:
        self.inside.set()
        self.gate.wait(10)
        ids = [doc.id for _, doc in docs]
        self.commits.append(ids)
        if self.fail_groups_with is not None and len(ids) > 1:
            raise self.fail_groups_with
        super().create_together(docs)


def record(doc_id: str) -> tuple[str, Document]:
    return (
        "idempotency",
        IdempotencyDoc(id=doc_id, tenant_id="t", message_id=doc_id, request_sha256="0"),
    )


def run_behind_a_held_commit(
    store: GatedStore, shared: SharedCommits, later: list[str]
) -> dict[str, BaseException | None]:
    """One request's commit is held; `later` requests arrive meanwhile; then it is let go."""
    outcomes: dict[str, BaseException | None] = {}

    def create(doc_id: str) -> None:
        try:
            shared.create_together([record(doc_id)])
            outcomes[doc_id] = None
        except BaseException as e:
            outcomes[doc_id] = e

    first = threading.Thread(target=create, args=("first",))
    first.start()
    assert store.inside.wait(5)
    others = [threading.Thread(target=create, args=(i,)) for i in later]
    for t in others:
        t.start()
    deadline = time.monotonic() + 5
    while len(shared._queue) < len(later) and time.monotonic() < deadline:
        time.sleep(0.005)
    store.gate.set()
    for t in [first, *others]:
        t.join(10)
    return outcomes


def test_requests_that_arrive_during_a_commit_share_the_next_one() -> None:
    store = GatedStore()
    shared = SharedCommits(store, in_flight=1)
    outcomes = run_behind_a_held_commit(store, shared, ["a", "b", "c"])
    assert outcomes == {"first": None, "a": None, "b": None, "c": None}
    assert store.commits == [["first"], ["a", "b", "c"]]
    assert len(store.collection("idempotency", IdempotencyDoc).get_many(["a", "b", "c"])) == 3


def test_a_request_that_finds_its_document_existing_fails_alone() -> None:
    store = GatedStore()
    MemoryStore.create_together(store, [record("b")])  # a repeated Idempotency-Key
    shared = SharedCommits(store, in_flight=1)
    outcomes = run_behind_a_held_commit(store, shared, ["a", "b", "c"])
    assert isinstance(outcomes["b"], AlreadyExists)
    assert outcomes["a"] is None and outcomes["c"] is None
    # The group failed as a whole, then each of its requests committed alone.
    assert store.commits == [["first"], ["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert len(store.collection("idempotency", IdempotencyDoc).get_many(["a", "c"])) == 2


def test_a_failed_shared_commit_fails_every_request_in_it() -> None:
    store = GatedStore()
    store.fail_groups_with = DependencyUnavailable("Firestore is down")
    shared = SharedCommits(store, in_flight=1)
    outcomes = run_behind_a_held_commit(store, shared, ["a", "b"])
    assert outcomes["first"] is None
    assert isinstance(outcomes["a"], DependencyUnavailable)
    assert isinstance(outcomes["b"], DependencyUnavailable)
    assert store.collection("idempotency", IdempotencyDoc).get_many(["a", "b"]) == []


def test_a_request_alone_commits_at_once() -> None:
    store = GatedStore()
    store.gate.set()
    shared = SharedCommits(store)
    shared.create_together([record("x")])
    assert store.commits == [["x"]]


@pytest.mark.parametrize("in_flight", [1, 2])
def test_many_concurrent_requests_all_land(in_flight: int) -> None:
    store = GatedStore()
    store.gate.set()
    shared = SharedCommits(store, in_flight=in_flight)
    ids = [f"m{i}" for i in range(200)]
    threads = [threading.Thread(target=shared.create_together, args=([record(i)],)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(store.collection("idempotency", IdempotencyDoc).get_many(ids)) == 200
    assert sorted(i for commit in store.commits for i in commit) == sorted(ids)
