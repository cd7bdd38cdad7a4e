"""OrderGate: with the store answering, a send waits while an older, due message to its chat is
pending, and goes otherwise; what it learned answers "wait" for KNOWN_FRESH_S; a query reads at
most PRECISE_LIMIT (+ 2 per send asked about) entries and vouches only for what it read; the
sends of many chats share a query. Without the store: what it knows of each chat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import runner.order_gate as order_gate
from runner.io import Offload
from runner.order_gate import OrderGate, SendKey
from runner.sent_index import SentIndex
from tests.factories import text_message
from wagate.adapters.memory import MemoryStore
from wagate.contracts import MessageDoc, PendingSend
from wagate.domain.messages import MessageStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
CHAT = "+15550001111"


class Store:
    """The in-memory store; the pending entries' queries are counted, with their limits."""

    def __init__(self) -> None:
        self.memory = MemoryStore()
        self.limits: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)

    def collection(self, name: str, model: type[Any]) -> Any:
        inner = self.memory.collection(name, model)
        if name != "pending":
            return inner
        limits = self.limits

        class Counted:
            def __getattr__(self, attr: str) -> Any:
                return getattr(inner, attr)

            def query(self, *args: Any, **kwargs: Any) -> Any:
                limits.append(kwargs["limit"])
                return inner.query(*args, **kwargs)

        return Counted()

    def pending(self, mid: str, offset_s: float, to: str = CHAT, **fields: Any) -> SendKey:
        """A message to `to` accepted at T0 + offset_s, pending as the api writes it (message
        and pending/{id} entry); its order-check key."""
        created = T0 + timedelta(seconds=offset_s)
        doc = text_message(
            mid,
            to=to,
            status=MessageStatus.ACCEPTED,
            created_at=created,
            **fields,
        )
        self.memory.collection("messages", MessageDoc).put(doc)
        self.memory.collection("pending", PendingSend).put(PendingSend.of(doc))
        return SendKey(mid, "ses_1", to, created, NOW, doc.wa_id)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def gate(store: Store) -> Iterator[OrderGate]:
    io = Offload(2)
    gate = OrderGate(store, io)  # type: ignore[arg-type]
    gate.index = SentIndex()
    yield gate
    io.shutdown()


def has_earlier(gate: OrderGate, *keys: SendKey) -> list[bool]:
    async def ask() -> list[bool]:
        return list(await asyncio.gather(*(gate.has_earlier(key) for key in keys)))

    return asyncio.run(ask())


def test_an_older_pending_message_of_the_same_chat_holds_a_send(
    store: Store, gate: OrderGate
) -> None:
    store.pending("a", 0)
    assert has_earlier(gate, store.pending("b", 1)) == [True]


def test_a_send_with_no_older_pending_message_in_its_chat_goes(
    store: Store, gate: OrderGate
) -> None:
    first = store.pending("a", 0)
    store.pending("later", 5)  # younger: does not hold `first`
    store.pending("other", -5, to="+15550002222")  # another chat's older message
    assert has_earlier(gate, first) == [False]


def test_an_older_message_scheduled_for_later_or_sent_here_does_not_hold_a_send(
    store: Store, gate: OrderGate
) -> None:
    store.pending("scheduled", 0, send_at=NOW + timedelta(hours=1))
    sent = store.pending("sent_here", 1)
    assert gate.index is not None
    gate.index.put(sent.wa_id, "sent_here", MessageStatus.SENT)  # the store has not heard yet
    assert has_earlier(gate, store.pending("c", 2)) == [False]


def test_what_a_query_returned_answers_wait_for_known_fresh_s_then_the_store_is_asked(
    store: Store, gate: OrderGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.pending("a", 0)
    later = store.pending("b", 1)
    assert has_earlier(gate, later) == [True]
    assert has_earlier(gate, later) == [True]  # "a" is still known pending: no second query
    assert (len(store.limits), gate.answered_from_memory) == (1, 1)

    class Later:  # the monotonic clock, past KNOWN_FRESH_S
        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + order_gate.KNOWN_FRESH_S + 1

    monkeypatch.setattr(order_gate, "time", Later)
    assert has_earlier(gate, later) == [True]
    assert (len(store.limits), gate.answered_from_memory) == (2, 1)  # asked the store again


def test_a_query_reads_precise_limit_entries_plus_two_per_send_and_vouches_only_for_those(
    store: Store, gate: OrderGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(order_gate, "PRECISE_LIMIT", 2)
    for n in range(6):
        store.pending(f"p{n}", n)
    send = store.pending("s", 10)
    assert has_earlier(gate, send) == [True]
    assert store.limits == [2 + 2]  # p0..p3 read; p4 and p5 not
    for n in range(4):
        gate.finished(f"p{n}", "ses_1", CHAT)
    # The query was truncated at p3: it cannot vouch that nothing older than `send` is still
    # pending, so the store is asked again (and p4 holds it), not answered from memory.
    assert has_earlier(gate, send) == [True]
    assert len(store.limits) == 2 and gate.answered_from_memory == 0


def test_the_order_gate_knows_what_is_pending_without_the_store(gate: OrderGate) -> None:
    assert gate.index is not None
    now = T0 + timedelta(minutes=1)

    def key(mid: str, offset_s: int) -> SendKey:
        return SendKey(mid, "ses_1", "+1555", T0 + timedelta(seconds=offset_s), now, "w" + mid)

    gate.saw(key("a", 0), send_at=now + timedelta(hours=1))  # scheduled later: no block
    assert not gate.known_earlier(key("c", 2))
    gate.saw(key("b", 1), send_at=None)
    assert gate.known_earlier(key("c", 2))
    assert not gate.known_earlier(key("b", 1))  # not blocked by itself or later ones
    gate.index.put("wb", "b", MessageStatus.SENT)  # sent here; the store just has not heard yet
    assert not gate.known_earlier(key("c", 2))
    gate.index = SentIndex()
    gate.finished("b", "ses_1", "+1555")
    assert not gate.known_earlier(key("c", 2))


def test_a_predecessor_learned_moments_ago_answers_wait_without_a_query(
    gate: OrderGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart every pending task of the shard arrives at once: a send whose chat has
    a predecessor this runner just learned of waits without asking the store again."""
    now = T0 + timedelta(minutes=1)

    def key(mid: str, offset_s: int) -> SendKey:
        return SendKey(mid, "ses_1", "+1555", T0 + timedelta(seconds=offset_s), now, "w" + mid)

    async def scenario() -> None:
        gate.saw(key("a", 0), send_at=None)  # its task came and was paced: pending
        assert await gate.has_earlier(key("b", 1)) is True
        assert (gate.queries, gate.answered_from_memory) == (0, 1)
        monkeypatch.setattr(order_gate, "KNOWN_FRESH_S", 0.0)  # what it knows is old now
        assert await gate.has_earlier(key("b", 1)) is False  # the store has no entry for "a"
        assert gate.queries == 1
        monkeypatch.setattr(order_gate, "KNOWN_FRESH_S", 10.0)
        assert await gate.has_earlier(key("b", 1)) is False  # that query covered the chat
        assert (gate.queries, gate.answered_from_memory) == (1, 2)

    asyncio.run(scenario())


def test_a_chat_a_query_just_covered_is_answered_from_memory(store: Store, gate: OrderGate) -> None:
    """Once a query returned every pending message of a chat older than a send, and this
    runner saw those finish, the next send of the chat goes without asking again."""
    now = T0 + timedelta(minutes=1)
    store.pending("a", 0)
    store.pending("b", 1)

    def key(mid: str, offset_s: int) -> SendKey:
        return SendKey(mid, "ses_1", "+15550001111", T0 + timedelta(seconds=offset_s), now, "w")

    async def scenario() -> None:
        assert await gate.has_earlier(key("c", 2)) is True  # a and b are pending
        assert gate.queries == 1
        assert await gate.has_earlier(key("b", 1)) is True  # a is: from memory
        gate.finished("a", "ses_1", "+15550001111")
        assert await gate.has_earlier(key("b", 1)) is False  # a finished here: b goes
        assert (gate.queries, gate.answered_from_memory) == (1, 2)

    asyncio.run(scenario())


def test_the_sends_of_many_chats_share_one_query_per_thirty_chats(
    store: Store, gate: OrderGate
) -> None:
    """A burst to 40 different chats costs two queries (`chat in [...]`), and each send gets
    its own chat's answer: held by an older pending message of its chat, never by another's."""
    asked: list[SendKey] = []
    for i in range(40):
        to = f"+1555000{i:04d}"
        if i % 2 == 0:
            store.pending(f"p{i}", 0, to=to)  # an older message still pending
        asked.append(store.pending(f"m{i}", 1 + i / 1000, to=to))
    # Two sends of one chat in the same burst: the older goes, the newer waits for it.
    older = store.pending("x1", 2, to="+15559999999")
    newer = store.pending("x2", 3, to="+15559999999")
    # An entry left behind by a lost delete (its message was sent) holds nothing back.
    store.pending("gone", 0.5, to="+15550000001")
    store.memory.collection("messages", MessageDoc).patch("gone", {"status": MessageStatus.SENT})

    async def scenario() -> list[bool]:
        return list(await asyncio.gather(*(gate.has_earlier(k) for k in [*asked, older, newer])))

    answers = asyncio.run(scenario())
    assert answers[:40] == [i % 2 == 0 for i in range(40)]
    assert answers[40:] == [False, True]
    assert gate.queries == 2
    assert store.memory.collection("pending", PendingSend).get("gone") is None


def test_a_truncated_shared_query_asks_again_for_the_chat_it_did_not_cover(
    store: Store, gate: OrderGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another chat's backlog can fill the shared query's limit before it reaches a send's own
    predecessor: that send is asked about alone, not waved through."""
    monkeypatch.setattr(order_gate, "PRECISE_LIMIT", 0)  # the limit is twice the sends asked about
    for n in range(4):
        store.pending(f"busy{n}", n, to="+15550000001")  # fills the limit
    busy = store.pending("busy", 10, to="+15550000001")
    store.pending("before", 5, to="+15550000002")  # past the limit's reach
    quiet = store.pending("quiet", 10, to="+15550000002")

    async def scenario() -> list[bool]:
        return list(await asyncio.gather(gate.has_earlier(busy), gate.has_earlier(quiet)))

    assert asyncio.run(scenario()) == [True, True]
    assert gate.queries == 2


def test_the_shard_listing_lets_the_runner_keep_order_without_the_store(
    store: Store, gate: OrderGate
) -> None:
    """What the takeover listing returned holds a chat's later messages back during an outage,
    even though no task of the earlier message has reached this runner."""
    earlier = store.pending("a", 0, to="+15550001111")
    later = store.pending("b", 1, to="+15550001111")
    other = store.pending("c", 1, to="+15550002222")
    assert gate.blocked_without_store(other)  # nothing listed yet: cannot vouch for any chat
    gate.listed(store.memory.collection("pending", PendingSend).query())
    gate.shard_listed()
    assert gate.blocked_without_store(later)
    assert not gate.blocked_without_store(earlier) and not gate.blocked_without_store(other)
    gate.finished("a", "ses_1", "+15550001111")
    assert not gate.blocked_without_store(later)
    gate.forget_all()  # a new lease
    assert gate.blocked_without_store(other)
