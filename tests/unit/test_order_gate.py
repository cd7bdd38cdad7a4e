"""OrderGate's normal path, with the store answering: a send waits while an older, due message
to its chat is pending, and goes otherwise; what it learned answers "wait" for KNOWN_FRESH_S;
a query reads at most PRECISE_LIMIT (+ 2 per send asked about) entries and vouches only for
what it read."""

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
from wagate.adapters.memory import MemoryStore
from wagate.contracts import MessageDoc, PendingSend, TextContent
from wagate.domain.ids import whatsapp_message_id
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
        doc = MessageDoc(
            id=mid,
            tenant_id="ten_1",
            session_id="ses_1",
            shard=0,
            to=to,
            content=TextContent(body="hello"),
            status=MessageStatus.ACCEPTED,
            wa_id=whatsapp_message_id(mid),
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


def test_a_chat_a_query_covered_goes_from_memory_once_its_predecessor_finished(
    store: Store, gate: OrderGate
) -> None:
    store.pending("a", 0)
    later = store.pending("b", 1)
    assert has_earlier(gate, later) == [True]
    gate.finished("a", "ses_1", CHAT)  # sent here: the store's entry is deleted later
    assert has_earlier(gate, later) == [False]
    assert len(store.limits) == 1


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
