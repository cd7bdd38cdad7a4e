"""The runner's write-behind journal (runner/journal/) on the in-memory store: what the store
cannot take is kept on disk in order, survives a crash, and is replayed idempotently, never
moving a message's status backwards."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic_core import to_jsonable_python

from runner.context import ShardContext
from runner.group_commit import GroupCommit
from runner.inbound import InboundSink
from runner.io import Offload
from runner.journal import JOURNAL_FILE, DurableAlerts, DurableWrites, Journal, SessionPatch
from runner.sent_index import SentEntry, SentIndex
from runner.writes import MessageEvent, apply_status_events
from tests.factories import text_message
from wagate import wiring
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.memory import FixedClock, MemoryStore, MemoryTaskQueue
from wagate.config import Settings
from wagate.contracts import (
    AlertDoc,
    InboundDoc,
    MessageDoc,
    PendingSend,
    SessionDoc,
    ShardLease,
    TenantDoc,
    WebhookTask,
)
from wagate.domain import events as ev
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import PENDING
from wagate.domain.messages import MessageStatus as S
from wagate.domain.sessions import SessionState
from wagate.errors import DependencyUnavailable
from wagate.ports import Fence, TaskQueue
from wagate.services.alerts import alert_id
from wagate.services.backups import SessionBackups
from wagate.services.directory import SessionDirectory
from wagate.services.events import group_participants_event
from wagate.services.outbox import Outbox

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- a store that can be cut


class Outage:
    def __init__(self) -> None:
        self.down = False


class _Cuttable:
    """Delegates to a real in-memory object; every call fails while the outage is on."""

    def __init__(self, inner: Any, outage: Outage) -> None:
        self._inner = inner
        self._outage = outage

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._outage.down:
                raise DependencyUnavailable("Firestore unavailable (test outage)")
            return attr(*args, **kwargs)

        return call


class CuttableStore(_Cuttable):
    def collection(self, name: str, model: type[Any]) -> Any:
        return _Cuttable(self._inner.collection(name, model), self._outage)

    def subcollection(self, parent: str, parent_id: str, name: str, model: type[Any]) -> Any:
        return _Cuttable(self._inner.subcollection(parent, parent_id, name, model), self._outage)


class World:
    """A runner's shard context on the in-memory store, with an outage switch."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.outage = Outage()
        self.memory = MemoryStore()
        self.store = cast(Any, CuttableStore(self.memory, self.outage))
        self.queue = MemoryTaskQueue()
        self.clock = FixedClock(T0)
        self.io = Offload(4)
        self.ctx = self.context()
        self.memory.collection("shards", ShardLease).put(ShardLease(id="0", holder="me", token=7))
        self.memory.collection("tenants", TenantDoc).put(
            TenantDoc(id="ten_1", name="acme", webhook_url="http://hooks.example/in")
        )
        self.memory.collection("sessions", SessionDoc).put(
            SessionDoc(id="ses_1", tenant_id="ten_1", shard=0, state=SessionState.CONNECTED)
        )

    def context(self) -> ShardContext:
        """A fresh composition on the same journal file and store (a restarted runner)."""
        durable = DurableWrites(
            Journal(self.tmp / JOURNAL_FILE), self.io, self.store, timeout_s=2.0
        )
        return ShardContext(
            settings=Settings(_env_file=None),  # type: ignore[call-arg]
            store=self.store,
            queue=self.queue,
            engine=cast(Any, None),
            backups=SessionBackups(None, StaticKeyRing(KEY_RING), "local", self.tmp),
            alerts=DurableAlerts(durable, self.store, self.clock),
            clock=self.clock,
            io=self.io,
            state_dir=self.tmp,
            durable_writes=durable,
        )

    def sink(self, index: SentIndex | None = None) -> InboundSink:
        return InboundSink(self.ctx, GroupCommit(self.store, self.io), index or SentIndex())

    def message(self, mid: str, status: S = S.ACCEPTED, attempts: int = 0) -> MessageDoc:
        doc = text_message(
            mid,
            status=status,
            attempts=attempts,
            status_times={S.ACCEPTED.value: T0},
            created_at=T0,
        )
        self.put_message(doc)
        return doc

    def put_message(self, doc: MessageDoc) -> None:
        """As the api writes it: the message and, while it is pending, its pending/{id} entry."""
        self.memory.collection("messages", MessageDoc).put(doc)
        if doc.status in PENDING:
            self.memory.collection("pending", PendingSend).put(PendingSend.of(doc))

    def stored(self, mid: str) -> MessageDoc:
        doc = self.memory.collection("messages", MessageDoc).get(mid)
        assert doc is not None
        return doc

    def outbox(self, queue: TaskQueue | None = None) -> Outbox:
        """The Outbox as the programs wire it (wagate.wiring.routing), on the memory store (not
        the outage switch: the sweeper's and the nudge's re-enqueues run once the store
        answered) and this world's queue unless another is given."""
        return Outbox(
            self.memory,
            queue or self.queue,
            self.clock,
            wiring.routing(self.ctx.settings),
            SessionDirectory(self.memory),
        )

    def session(self) -> SessionDoc:
        doc = self.memory.collection("sessions", SessionDoc).get("ses_1")
        assert doc is not None
        return doc

    async def replay(self) -> None:
        """Run the replayer until the journal is empty."""
        durable = self.ctx.durable
        durable.start()
        try:
            for _ in range(200):
                if durable.backlog == 0:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"journal not replayed: {durable.backlog} left")
        finally:
            await durable.stop()


KEY_RING = "k1:" + "A" * 43 + "="


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.io.shutdown()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def event(status: S, at: datetime, *, mid: str = "msg_1", claimed: bool = True) -> MessageEvent:
    return MessageEvent(
        message_id=mid,
        session_id="ses_1",
        tenant_id="ten_1",
        wa_id=whatsapp_message_id(mid),
        status=status,
        at=at,
        started_at=at - timedelta(seconds=1),
        claimed=claimed,
    )


# ---------------------------------------------------------------- the file


def test_entries_survive_a_reopen_in_the_order_they_were_written(tmp_path: Path) -> None:
    journal = Journal(tmp_path / JOURNAL_FILE)
    for n in range(5):
        journal.append_now("k", f"key{n % 2}", f'{{"n": {n}}}')
    journal.remove([journal.oldest(1)[0].seq])
    journal.close()
    reopened = Journal(tmp_path / JOURNAL_FILE)
    assert reopened.backlog == 4
    assert [e.body for e in reopened.oldest(10)] == [f'{{"n": {n}}}' for n in range(1, 5)]


def test_an_append_that_returned_survives_a_sigkill_of_the_process(tmp_path: Path) -> None:
    # The child appends, says so, and is killed by the parent right after: no clean close.
    child = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from runner.journal import Journal
        j = Journal(Path({str(tmp_path / JOURNAL_FILE)!r}))
        for n in range(50):
            j.append_now("k", "key", str(n))
            print(n, flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    acknowledged = [process.stdout.readline().strip() for _ in range(50)]
    process.kill()
    process.wait(timeout=10)
    assert acknowledged[-1] == "49"
    assert [e.body for e in Journal(tmp_path / JOURNAL_FILE).oldest(100)] == acknowledged


# ---------------------------------------------------------------- status events (pure)


def test_an_unclaimed_send_is_replayed_as_sending_then_sent_with_its_attempt_counted(
    world: World,
) -> None:
    doc = world.message("msg_1")
    after = apply_status_events(doc, [event(S.SENT, T0, claimed=False)], T0)
    assert after.status == S.SENT and after.attempts == 1
    assert set(after.status_times) == {"accepted", "sending", "sent"}


def test_status_events_never_move_a_message_backwards(world: World) -> None:
    read = world.message("msg_1", S.READ)
    for late in (S.SENT, S.DELIVERED, S.FAILED, S.DEAD):
        assert apply_status_events(read, [event(late, T0)], T0).status == S.READ
    dead = world.message("msg_2", S.DEAD)
    assert apply_status_events(dead, [event(S.FAILED, T0, mid="msg_2")], T0).status == S.DEAD


def test_replaying_the_same_events_twice_changes_nothing_more(world: World) -> None:
    doc = world.message("msg_1")
    events = [
        event(S.SENT, T0, claimed=False),
        event(S.DELIVERED, T0 + timedelta(seconds=1)),
        event(S.READ, T0 + timedelta(seconds=2)),
    ]
    once = apply_status_events(doc, events, T0)
    twice = apply_status_events(once, events, T0)
    assert once.status == twice.status == S.READ
    assert once.attempts == twice.attempts == 1
    assert once.status_times == twice.status_times


def test_a_dead_outcome_keeps_its_reason() -> None:
    doc = text_message("msg_1", status=S.SENDING, attempts=3)
    dead = event(S.DEAD, T0).model_copy(
        update={"error_code": "send_permanent", "error_message": "not on WhatsApp"}
    )
    after = apply_status_events(doc, [dead], T0)
    assert after.status == S.DEAD and after.attempts == 3
    assert after.dead_reason == "send_permanent: not on WhatsApp"
    assert after.errors[-1].attempt == 3


# ---------------------------------------------------------------- write-behind and replay


def test_session_state_written_during_an_outage_is_replayed_in_order(world: World) -> None:
    durable = world.ctx.durable
    fence = Fence(0, 7)

    async def scenario() -> None:
        world.outage.down = True
        for n, state in enumerate(
            [SessionState.RECONNECTING, SessionState.CONNECTING, SessionState.CONNECTED]
        ):
            fields = {"state": state, "reconnect_attempts": 3 - n}
            await durable.update_session("ses_1", fence, fields, T0 + timedelta(seconds=n))
        assert durable.backlog == 3 and durable.store_degraded
        assert world.session().state == SessionState.CONNECTED  # untouched so far
        # While older writes wait, a new one joins the queue even if the store is back.
        world.outage.down = False
        await durable.update_session(
            "ses_1", fence, {"state": SessionState.RECONNECTING}, T0 + timedelta(seconds=3)
        )
        assert durable.backlog == 4
        await world.replay()

    run(scenario())
    session = world.session()
    assert session.state == SessionState.RECONNECTING
    assert session.reconnect_attempts == 1
    assert session.updated_at == T0 + timedelta(seconds=3)
    assert not world.ctx.durable.store_degraded


def test_journaled_session_state_of_a_lost_lease_is_dropped_not_applied(world: World) -> None:
    async def scenario() -> None:
        world.outage.down = True
        await world.ctx.durable.update_session(
            "ses_1", Fence(0, 7), {"state": SessionState.FAILED}, T0
        )
        world.outage.down = False
        # Meanwhile another runner took the shard over.
        world.memory.collection("shards", ShardLease).put(ShardLease(id="0", holder="b", token=8))
        await world.replay()

    run(scenario())
    assert world.session().state == SessionState.CONNECTED
    assert world.ctx.durable.journal.parked == 0


def test_receipts_and_inbound_during_an_outage_are_stored_and_announced_once_after(
    world: World,
) -> None:
    index = SentIndex()
    world.message("msg_1", S.SENDING, attempts=1)
    index.put(whatsapp_message_id("msg_1"), "msg_1", S.SENT)
    sink = world.sink(index)
    inbound = ev.InboundMessage(
        wa_id="3EB0IN1", chat="+15552", sender="+15552", kind="text", content={"body": "hi"}, ts=T0
    )

    async def scenario() -> None:
        world.outage.down = True
        # The runner's own `sent` (journaled by the send handler), then WhatsApp's receipts.
        await world.ctx.durable.write("message", "messages/msg_1", event(S.SENT, T0), direct=None)
        for kind in ("delivered", "read"):
            receipt = ev.Receipt(
                kind=kind, wa_ids=(whatsapp_message_id("msg_1"),), chat="+1", ts=T0
            )
            await sink.accept("ten_1", "ses_1", receipt)
        await sink.accept("ten_1", "ses_1", inbound)
        await sink.accept("ten_1", "ses_1", inbound)  # redelivered by WhatsApp
        assert world.ctx.durable.backlog == 5
        assert world.queue.tasks == []
        world.outage.down = False
        await world.replay()

    run(scenario())
    assert world.stored("msg_1").status == S.READ
    stored = world.memory.subcollection("sessions", "ses_1", "inbound", InboundDoc).get("3EB0IN1")
    assert stored is not None and stored.content == {"body": "hi"}
    names = sorted(t.name for t in world.queue.tasks)
    assert len(names) == len(set(names)) == 3  # received + delivered + read, once each


def test_a_senders_phone_and_lid_forms_are_stored_and_announced(world: World) -> None:
    inbound = ev.InboundMessage(
        wa_id="3EB0LID",
        chat="100000000000021@lid",
        sender="100000000000021@lid",
        kind="text",
        content={"body": "hi"},
        ts=T0,
        sender_phone="15550000003@s.whatsapp.net",
        sender_lid="100000000000021@lid",
    )
    run(world.sink().accept("ten_1", "ses_1", inbound))
    stored = world.memory.subcollection("sessions", "ses_1", "inbound", InboundDoc).get("3EB0LID")
    assert stored is not None
    assert (stored.sender_phone, stored.sender_lid) == (inbound.sender_phone, inbound.sender_lid)
    (task,) = world.queue.tasks
    data = WebhookTask.model_validate_json(task.body).event.data
    assert (data["sender"], data["sender_phone"], data["sender_lid"]) == (
        "100000000000021@lid",
        "15550000003@s.whatsapp.net",
        "100000000000021@lid",
    )


def test_a_replay_interrupted_by_a_crash_is_finished_by_the_next_process(world: World) -> None:
    world.message("msg_1")

    async def during_outage() -> None:
        world.outage.down = True
        await world.ctx.durable.write(
            "message", "messages/msg_1", event(S.SENT, T0, claimed=False), direct=None
        )
        receipt = ev.Receipt(
            kind="delivered", wa_ids=(whatsapp_message_id("msg_1"),), chat="+1", ts=T0
        )
        index = SentIndex()
        index.put(whatsapp_message_id("msg_1"), "msg_1", S.SENT)
        await world.sink(index).accept("ten_1", "ses_1", receipt)

    run(during_outage())
    assert world.ctx.durable.backlog == 2
    world.ctx.durable.journal.close()  # the process dies here; the store comes back
    world.outage.down = False
    world.ctx = world.context()
    restarted_index = SentIndex()
    world.sink(restarted_index)  # registers the replay handlers, as the runner does at start
    # What the journal says WhatsApp has is known before the replay: a redelivered task is
    # answered without sending again.
    assert restarted_index.get(whatsapp_message_id("msg_1")) == SentEntry("msg_1", S.DELIVERED)
    run(world.replay())
    assert world.stored("msg_1").status == S.DELIVERED
    assert world.stored("msg_1").attempts == 1


def test_a_record_that_cannot_be_applied_is_parked_and_the_rest_goes_on(world: World) -> None:
    world.message("msg_1")

    async def scenario() -> None:
        durable = world.ctx.durable
        durable.journal.append_now("message", "messages/x", "not json")
        await durable.write(
            "message", "messages/msg_1", event(S.SENT, T0, claimed=False), direct=None
        )
        await world.replay()

    world.sink()
    run(scenario())
    assert world.ctx.durable.journal.parked == 1
    assert world.stored("msg_1").status == S.SENT


def test_alerts_raised_during_an_outage_are_recorded_afterwards(world: World) -> None:
    world.sink()
    alerts = world.ctx.alerts

    async def scenario() -> None:
        world.outage.down = True
        await asyncio.to_thread(alerts.raise_alert, "session_failing", "ses_1", "5 in a row")
        await asyncio.to_thread(alerts.record_recovery, "reconnect", "after 5", "connected")
        world.outage.down = False
        await world.replay()

    run(scenario())
    alert = world.memory.collection("health_alerts", AlertDoc).get(
        alert_id("session_failing", "ses_1")
    )
    assert alert is not None and alert.message == "5 in a row"


def test_a_store_call_that_hangs_is_treated_as_an_outage_and_held_back(world: World) -> None:
    durable = world.ctx.durable

    async def scenario() -> None:
        gate = asyncio.Event()

        async def hanging() -> None:
            await gate.wait()

        fields = {"state": SessionState.RECONNECTING}
        journaled = await durable.write(
            "session", "sessions/ses_1", _patch(fields), lambda: hanging()
        )
        assert journaled and durable.backlog == 1
        # The late call still runs: the replayer must not overtake it.
        durable.start()
        await asyncio.sleep(0.3)
        assert durable.backlog == 1
        gate.set()
        await world.replay()

    run(scenario())
    assert world.session().state == SessionState.RECONNECTING


def _patch(fields: dict[str, Any]) -> SessionPatch:
    return SessionPatch(
        session_id="ses_1", fence_shard=0, fence_token=7, fields=to_jsonable_python(fields), at=T0
    )


def test_a_received_file_during_an_outage_is_announced_with_a_url_signed_at_the_replay(
    world: World,
) -> None:
    """The file goes to the bucket at once (Cloud Storage is up, Firestore is not); the message
    waits in the journal with the file's facts, and its announcement after the outage carries a
    URL signed then, not one that expired meanwhile."""
    from tenacity import wait_none

    from runner.inbound_media import InboundMediaStore
    from wagate.adapters.memory import MemoryBlobStore
    from wagate.ports import SignedUrl
    from wagate.services.media import Media

    signed: list[str] = []

    class Signer:
        def sign(self, name: str, ttl_s: int) -> SignedUrl:
            signed.append(name)
            return SignedUrl(f"https://signed.example/{name}?n={len(signed)}", T0)

    async def fetch(limit: int) -> bytes:
        return b"\xff\xd8\xff photo"

    bucket = MemoryBlobStore()
    world.ctx.media = InboundMediaStore(Media(bucket), Signer(), world.io, wait=wait_none())
    photo = ev.InboundMessage(
        wa_id="3EB0PIC",
        chat="+15552",
        sender="+15552",
        kind="image",
        content={},
        ts=T0,
        media=ev.InboundMedia("image/jpeg", fetch, size=12),
    )

    async def scenario() -> None:
        world.outage.down = True
        await world.sink().accept("ten_1", "ses_1", photo)
        assert world.queue.tasks == [] and signed == []
        world.outage.down = False
        await world.replay()

    run(scenario())
    stored = world.memory.subcollection("sessions", "ses_1", "inbound", InboundDoc).get("3EB0PIC")
    assert stored is not None and stored.media is not None and stored.media.media_id
    assert bucket.get(f"media/ten_1/{stored.media.media_id}").data == b"\xff\xd8\xff photo"
    (task,) = world.queue.tasks
    media = WebhookTask.model_validate_json(task.body).event.data["media"]
    assert media["url"] == f"https://signed.example/media/ten_1/{stored.media.media_id}?n=1"
    assert media["sha256"] == stored.media.sha256 and media["error"] is None


def test_a_runner_without_a_media_bucket_announces_the_file_as_not_stored(world: World) -> None:
    async def fetch(limit: int) -> bytes:
        raise AssertionError("nothing to download into")

    clip = ev.InboundMessage(
        wa_id="3EB0CLIP",
        chat="+15552",
        sender="+15552",
        kind="video",
        content={},
        ts=T0,
        media=ev.InboundMedia("video/mp4", fetch, size=9),
    )
    run(world.sink().accept("ten_1", "ses_1", clip))
    (task,) = world.queue.tasks
    media = WebhookTask.model_validate_json(task.body).event.data["media"]
    assert media["error"]["code"] == "not_configured" and media["url"] is None
    assert (media["mime_type"], media["size"], media["media_id"]) == ("video/mp4", 9, None)


def test_group_changes_announced_during_a_store_or_queue_outage_go_out_once_after(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = world.sink()
    joined = ev.GroupParticipantsChanged("123@g.us", "add", ("+15552",), "+15551", T0)
    left = ev.GroupParticipantsChanged("123@g.us", "remove", ("+15553",), None, T0)
    queue_down = False
    enqueue = world.queue.enqueue

    def flaky_enqueue(task: Any) -> str:
        if queue_down:
            raise DependencyUnavailable("Cloud Tasks unavailable (test outage)")
        return enqueue(task)

    monkeypatch.setattr(world.queue, "enqueue", flaky_enqueue)

    async def scenario() -> None:
        nonlocal queue_down
        queue_down = True  # the store answers, the queue does not
        await sink.announce("ten_1", group_participants_event("ses_1", joined))
        assert world.ctx.durable.backlog == 1
        queue_down, world.outage.down = False, True  # now the store is away
        await sink.announce("ten_1", group_participants_event("ses_1", left))
        assert world.ctx.durable.backlog == 2
        assert world.queue.tasks == []
        world.outage.down = False
        await world.replay()
        await sink.announce("ten_1", group_participants_event("ses_1", joined))  # redelivered

    run(scenario())
    assert world.ctx.durable.backlog == 0
    names = [t.name for t in world.queue.tasks]
    assert len(names) == len(set(names)) == 2  # joined and left, once each
