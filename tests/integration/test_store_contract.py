"""The Store/Repository/Leases contract, run against the in-memory adapter and the real
Firestore emulator: both must behave the same."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.factories import text_message
from wagate.adapters.memory import FixedClock
from wagate.contracts import MessageDoc, SessionDoc, ShardLease, TextContent
from wagate.domain.messages import MessageStatus
from wagate.errors import AlreadyExists, Conflict, FencedOut, LeaseHeld, NotFound
from wagate.ports import Fence, Store, Where
from wagate.services.leases import Leases

pytestmark = pytest.mark.integration


def session(doc_id: str, shard: int = 0, **kw: object) -> SessionDoc:
    return SessionDoc(id=doc_id, tenant_id="t1", shard=shard, **kw)  # type: ignore[arg-type]


def message(doc_id: str, status: MessageStatus = MessageStatus.ACCEPTED) -> MessageDoc:
    return text_message(
        doc_id,
        tenant_id="t1",
        session_id="s1",
        to="+15550001",
        status=status,
    )


def test_documents_round_trip_with_their_types(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)
    original = message("m1")
    repo.create(original)
    loaded = repo.get("m1")
    assert loaded is not None
    assert loaded.content == TextContent(body="hello")
    assert loaded.status is MessageStatus.ACCEPTED
    assert loaded.created_at == original.created_at
    assert repo.get("missing") is None


def test_create_refuses_an_existing_id(store: Store) -> None:
    repo = store.collection("sessions", SessionDoc)
    repo.create(session("s1"))
    with pytest.raises(AlreadyExists):
        repo.create(session("s1"))


def test_update_is_a_transaction_that_loses_no_increment(store: Store) -> None:
    repo = store.collection("sessions", SessionDoc)
    repo.create(session("s1"))

    def bump(doc: SessionDoc) -> SessionDoc:
        return doc.model_copy(update={"reconnect_attempts": doc.reconnect_attempts + 1})

    threads = [
        threading.Thread(target=lambda: [repo.update("s1", bump) for _ in range(3)])
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = repo.get("s1")
    assert loaded is not None and loaded.reconnect_attempts == 6


def test_an_update_leaves_the_document_equal_to_what_the_function_returned(store: Store) -> None:
    """Updates send only the fields that changed: a map that lost a key, a field set back to
    None and a changed field must all come back as the function left them."""
    repo = store.collection("messages", MessageDoc)
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    repo.put(
        message("m1").model_copy(
            update={"status_times": {"accepted": now, "queued": now}, "send_at": now}
        )
    )

    def change(d: MessageDoc) -> MessageDoc:
        return d.model_copy(
            update={"status_times": {"accepted": now}, "send_at": None, "attempts": 2}
        )

    expected = repo.update("m1", change)
    assert repo.get("m1") == expected
    assert expected.status_times == {"accepted": now} and expected.send_at is None
    assert repo.update_many(["m1"], lambda d: d)["m1"] == repo.get("m1")  # nothing changed


def test_swap_is_a_compare_and_set_that_loses_no_increment(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)

    def bump(d: MessageDoc | None) -> MessageDoc:
        return (d or message("m1")).model_copy(update={"attempts": (d.attempts if d else 0) + 1})

    def five() -> None:
        for _ in range(5):
            while True:
                try:
                    repo.swap("m1", bump)
                    break
                except Conflict:  # it kept changing under this writer: the caller tries again
                    continue

    threads = [threading.Thread(target=five) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert repo.get("m1").attempts == 15  # type: ignore[union-attr]


def test_update_of_a_missing_document_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.collection("sessions", SessionDoc).update("nope", lambda d: d)


def test_an_aborting_update_writes_nothing(store: Store) -> None:
    repo = store.collection("sessions", SessionDoc)
    repo.create(session("s1"))

    def refuse(doc: SessionDoc) -> SessionDoc:
        raise AlreadyExists("no")

    with pytest.raises(AlreadyExists):
        repo.update("s1", refuse)
    assert repo.get("s1") == session("s1").model_copy(
        update={"created_at": repo.get("s1").created_at, "updated_at": repo.get("s1").updated_at}  # type: ignore[union-attr]
    )


def test_query_filters_orders_and_pages_by_cursor(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)
    repo.put_many([message(f"m{i}") for i in range(5)] + [message("x", MessageStatus.DEAD)])
    accepted = repo.query([Where("status", "==", "accepted")], order_by="id")
    assert [m.id for m in accepted] == ["m0", "m1", "m2", "m3", "m4"]
    page1 = repo.query([Where("status", "==", "accepted")], order_by="id", limit=2)
    page2 = repo.query(
        [Where("status", "==", "accepted")], order_by="id", limit=2, start_after=page1[-1].id
    )
    assert [m.id for m in page1 + page2] == ["m0", "m1", "m2", "m3"]
    assert [m.id for m in repo.query([Where("status", "in", ["dead"])])] == ["x"]
    newest = repo.query(order_by="created_at", descending=True, limit=1)
    assert [m.id for m in newest] == ["x"]


def test_get_many_keeps_order_and_skips_missing(store: Store) -> None:
    repo = store.collection("sessions", SessionDoc)
    repo.put_many([session("a"), session("b"), session("c")])
    assert [s.id for s in repo.get_many(["c", "zz", "a"])] == ["c", "a"]


def test_subcollections_are_separate(store: Store) -> None:
    a = store.subcollection("sessions", "s1", "inbound", SessionDoc)
    b = store.subcollection("sessions", "s2", "inbound", SessionDoc)
    a.put(session("x"))
    assert b.get("x") is None and a.get("x") is not None


def test_delete_removes(store: Store) -> None:
    repo = store.collection("sessions", SessionDoc)
    repo.put(session("s1"))
    repo.delete("s1")
    repo.delete("s1")  # idempotent
    assert repo.get("s1") is None


# ------------------------------------------------------------------ leases and fences


def test_lease_takeover_after_expiry_raises_the_fencing_token(store: Store) -> None:
    clock = FixedClock()
    leases = Leases(store.collection("shards", ShardLease), clock)
    first = leases.acquire(0, "runner-a", ttl=15)
    assert first.token == 1 and first.holder == "runner-a"
    with pytest.raises(LeaseHeld) as held:
        leases.acquire(0, "runner-b", ttl=15)
    assert held.value.retry_after is not None and 0 < held.value.retry_after <= 15
    clock.advance(5)
    renewed = leases.renew(0, "runner-a", first.token, ttl=15)
    assert renewed.token == first.token
    clock.advance(16)
    second = leases.acquire(0, "runner-b", ttl=15)
    assert second.token == first.token + 1 and second.holder == "runner-b"
    with pytest.raises(FencedOut):
        leases.renew(0, "runner-a", first.token, ttl=15)


def test_a_write_with_a_stale_fencing_token_is_refused(store: Store) -> None:
    clock = FixedClock()
    leases = Leases(store.collection("shards", ShardLease), clock)
    sessions = store.collection("sessions", SessionDoc)
    sessions.put(session("s1"))
    old = leases.acquire(0, "runner-a", ttl=15)
    sessions.update("s1", lambda d: d.model_copy(update={"jid": "a"}), fence=Fence(0, old.token))
    clock.advance(20)
    new = leases.acquire(0, "runner-b", ttl=15)
    with pytest.raises(FencedOut):
        sessions.update(
            "s1", lambda d: d.model_copy(update={"jid": "stale"}), fence=Fence(0, old.token)
        )
    sessions.update("s1", lambda d: d.model_copy(update={"jid": "b"}), fence=Fence(0, new.token))
    loaded = sessions.get("s1")
    assert loaded is not None and loaded.jid == "b"


def test_release_frees_the_lease_for_the_next_holder_at_once(store: Store) -> None:
    clock = FixedClock()
    leases = Leases(store.collection("shards", ShardLease), clock)
    lease = leases.acquire(3, "runner-a", ttl=15)
    leases.release(3, "runner-a", lease.token)
    nxt = leases.acquire(3, "runner-b", ttl=15)
    assert nxt.token == lease.token + 1
    leases.release(3, "runner-a", lease.token)  # a stale release changes nothing
    current = leases.current(3)
    assert current is not None and current.holder == "runner-b"


def test_create_together_is_all_or_nothing(store: Store) -> None:
    store.create_together([("sessions", session("a")), ("messages", message("m1"))])
    with pytest.raises(AlreadyExists):
        store.create_together([("messages", message("m2")), ("sessions", session("a"))])
    assert store.collection("messages", MessageDoc).get("m2") is None
    assert store.collection("messages", MessageDoc).get("m1") is not None


def test_count_is_an_aggregation(store: Store) -> None:
    repo = store.collection("sessions", SessionDoc)
    repo.put_many([session("a", shard=0), session("b", shard=1), session("c", shard=1)])
    assert repo.count([Where("shard", "==", 1)]) == 2
    assert repo.count() == 3


def test_patch_updates_fields_and_map_entries_without_a_read(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)
    repo.put(message("m1"))
    repo.patch("m1", {"status": MessageStatus.SENT, "status_times.sent": message("x").created_at})
    loaded = repo.get("m1")
    assert loaded is not None and loaded.status is MessageStatus.SENT
    assert set(loaded.status_times) == {"sent"}
    with pytest.raises(NotFound):
        repo.patch("missing", {"attempts": 1})


def test_patch_many_is_all_or_nothing(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)
    repo.put_many([message("a"), message("b")])
    store.patch_many([("messages", "a", {"attempts": 1}), ("messages", "b", {"attempts": 2})])
    assert [m.attempts for m in repo.get_many(["a", "b"])] == [1, 2]
    with pytest.raises(NotFound):
        store.patch_many([("messages", "a", {"attempts": 9}), ("messages", "zz", {"attempts": 9})])
    assert repo.get("a").attempts == 1  # type: ignore[union-attr]


def test_update_many_writes_each_document_or_reports_its_error(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)
    repo.put_many([message("a"), message("b", MessageStatus.SENT)])

    def claim(doc: MessageDoc) -> MessageDoc:
        if doc.status is MessageStatus.SENT:
            raise AlreadyExists("already sent")
        return doc.model_copy(update={"status": MessageStatus.SENDING})

    results = repo.update_many(["a", "b", "zz"], claim)
    assert isinstance(results["a"], MessageDoc) and results["a"].status is MessageStatus.SENDING
    assert isinstance(results["b"], AlreadyExists)
    assert isinstance(results["zz"], NotFound)
    assert repo.get("a").status is MessageStatus.SENDING  # type: ignore[union-attr]
    assert repo.get("b").status is MessageStatus.SENT  # type: ignore[union-attr]


def test_update_many_with_a_stale_fence_writes_nothing(store: Store) -> None:
    clock = FixedClock()
    leases = Leases(store.collection("shards", ShardLease), clock)
    repo = store.collection("messages", MessageDoc)
    repo.put(message("a"))
    old = leases.acquire(0, "runner-a", ttl=15)
    clock.advance(20)
    leases.acquire(0, "runner-b", ttl=15)
    with pytest.raises(FencedOut):
        repo.update_many(
            ["a"], lambda d: d.model_copy(update={"attempts": 5}), fence=Fence(0, old.token)
        )
    assert repo.get("a").attempts == 0  # type: ignore[union-attr]


def test_a_fenced_transaction_left_open_does_not_hold_up_the_next_lease_holder(
    firestore_env: dict[str, str],
) -> None:
    """A runner that dies inside a claim leaves its transaction open. The claim must not have
    locked the shard's lease, or the next runner could not take it until Firestore expires the
    transaction (60 s)."""
    from wagate.adapters.firestore import FirestoreStore, make_client

    store = FirestoreStore(make_client(f"c-{uuid.uuid4().hex[:10]}"))
    clock = FixedClock()
    leases = Leases(store.collection("shards", ShardLease), clock)
    repo = store.collection("messages", MessageDoc)
    repo.put(message("a"))
    old = leases.acquire(0, "runner-a", ttl=15)
    inside, leave = threading.Event(), threading.Event()

    def stuck(doc: MessageDoc) -> MessageDoc:
        inside.set()  # read and fence-checked, not committed: where a SIGKILL would leave it
        leave.wait(30)
        return doc.model_copy(update={"attempts": 1})

    claim = threading.Thread(
        target=lambda: repo.update_many(["a"], stuck, fence=Fence(0, old.token)), daemon=True
    )
    claim.start()
    try:
        assert inside.wait(10)
        clock.advance(20)
        started = time.monotonic()
        new = leases.acquire(0, "runner-b", ttl=15)
        assert new.token == old.token + 1
        assert time.monotonic() - started < 5  # a lock would hold it 60 s (or fail it)
    finally:
        leave.set()
        claim.join(30)


def test_patch_many_deletes_in_the_same_batch_and_a_missing_one_is_no_error(store: Store) -> None:
    repo = store.collection("messages", MessageDoc)
    repo.put(message("a"))
    repo.put(message("b"))
    store.patch_many([("messages", "a", {"attempts": 3})], [("messages", "b"), ("messages", "zz")])
    loaded = repo.get("a")
    assert loaded is not None and loaded.attempts == 3
    assert repo.get("b") is None


def test_a_filtered_query_pages_by_cursor_without_an_order(store: Store) -> None:
    """The takeover nudge pages through the shard's pending messages this way."""
    repo = store.collection("messages", MessageDoc)
    for i in range(5):
        repo.put(message(f"p{i}"))
    repo.put(message("done", MessageStatus.SENT))
    where = [Where("shard", "==", 0), Where("status", "in", ["accepted", "queued"])]
    seen: list[str] = []
    cursor = None
    while True:
        page = repo.query(where, limit=2, start_after=cursor)
        seen += [m.id for m in page]
        if len(page) < 2:
            break
        cursor = page[-1].id
    assert sorted(seen) == [f"p{i}" for i in range(5)]


def test_a_claim_left_open_locks_nothing_for_the_next_writer(
    firestore_env: dict[str, str],
) -> None:
    """A runner SIGKILLed inside a claim (read, not committed) must leave the messages free:
    with the server library's transactions they stayed locked until Firestore expired the
    transaction (60 s), so the next runner's claims and `sent` writes waited out lock timeouts
    and the first send after the kill came 24-54 s late (docs/decisions.md). The stuck claim
    itself, once it goes on, finds the documents changed and applies its function again."""
    from wagate.adapters.firestore import FirestoreStore, make_client

    store = FirestoreStore(make_client(f"c-{uuid.uuid4().hex[:10]}"))
    repo = store.collection("messages", MessageDoc)
    repo.put(message("a"))
    repo.put(message("b"))
    inside, leave = threading.Event(), threading.Event()
    calls: list[int] = []

    def stuck(doc: MessageDoc) -> MessageDoc:
        calls.append(doc.attempts)
        inside.set()  # read, not committed: where a SIGKILL would leave it
        leave.wait(30)
        return doc.model_copy(update={"attempts": doc.attempts + 10})

    claim = threading.Thread(target=lambda: repo.update_many(["a", "b"], stuck), daemon=True)
    claim.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        repo.update_many(["a"], lambda d: d.model_copy(update={"attempts": d.attempts + 1}))
        repo.update("b", lambda d: d.model_copy(update={"attempts": d.attempts + 1}))
        store.patch_many([("messages", "a", {"status": MessageStatus.SENT})])
        assert time.monotonic() - started < 5  # a lock would hold these 60 s (or fail them)
    finally:
        leave.set()
        claim.join(30)
    a, b = repo.get("a"), repo.get("b")
    assert a is not None and b is not None
    assert (a.attempts, b.attempts) == (11, 11)  # the stuck claim started over on what changed
    assert a.status == MessageStatus.SENT
    assert calls[0] == 0 and calls[-1] == 1
