"""Accepting, enqueueing and re-enqueueing outbound messages (the api side of SPEC §3).

accept(): validate → one atomic Firestore write (message, its pending/{id} entry for the order
check, the idempotency record) and, at the same time, one named Cloud Task → 202. If the
task cannot be created the message stays `accepted` and the sweeper enqueues it later; the
task name is derived from the message id, so a duplicate enqueue is refused by Cloud Tasks
itself.

Why at the same time, and why that is safe. Issued one after the other the two calls cost
their sum; concurrently, the slower of the two (docs/benchmarks.md, accept-latency). But the
task carries a snapshot of the message (SendSnapshot) so the runner can send it while
Firestore is unreachable (docs/outage.md), and a task whose write then fails (an outage, an
Idempotency-Key repeat) must never be sent: the client is told the message was not accepted
and will retry it. So:
- when the write fails, the task is withdrawn (Cloud Tasks DeleteTask) before the error is
  answered; a deleted task is never dispatched again;
- while the store answers, the runner claims before sending and finds no message for such a
  task (it answers 503 while the task is young, then drops it);
- without the store, the runner sends from a snapshot only once the task is older than
  TASK_SETTLED_AFTER_S, by when the write has landed or the task has been withdrawn.
The one case left — the api instance dies between creating the task and withdrawing it, and
the store stays unreachable past that age — is written down in docs/outage.md.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from wagate.contracts import (
    IDEMPOTENCY_TTL,
    Document,
    IdempotencyDoc,
    MessageDoc,
    PendingSend,
    SendMessageRequest,
    SendSnapshot,
    SendTask,
    TenantDoc,
)
from wagate.domain import ids
from wagate.domain import messages as lifecycle
from wagate.domain.messages import PENDING, MessageStatus
from wagate.errors import (
    AlreadyExists,
    Conflict,
    DependencyUnavailable,
    NotFound,
    TaskAlreadyExists,
    ValidationFailed,
    WagateError,
)
from wagate.logs import get_logger
from wagate.ports import Clock, Store, StoredMessages, TaskQueue, TaskSpec, Where
from wagate.queues import send_queue
from wagate.services.commits import SharedCommits
from wagate.services.directory import SessionDirectory

log = get_logger("wagate.outbox")
TaskCreation = Literal["created", "exists", "unavailable"]
# What giving a pending send whose task is gone a task again came to (Outbox.enqueue_again).
Requeue = Literal["created", "regenerated", "alive", "left_behind", "failed"]


SEND_AT_PAST_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Accepted:
    message: MessageDoc
    created: bool  # False when an Idempotency-Key repeat returned the first result


@dataclass(frozen=True)
class Routing:
    """Where a shard's tasks go (queue prefix and runner URL per shard)."""

    queue_prefix: str
    runner_url: Callable[[int], str]
    dispatch_deadline_s: float = 60.0


def request_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class Outbox:
    def __init__(
        self,
        store: Store,
        queue: TaskQueue,
        clock: Clock,
        routing: Routing,
        directory: SessionDirectory,
    ) -> None:
        self._store = store
        self._messages = store.collection("messages", MessageDoc)
        self._lifecycle = StoredMessages(store)
        self._idempotency = store.collection("idempotency", IdempotencyDoc)
        self._pending = store.collection("pending", PendingSend)
        self._creates = SharedCommits(store)  # concurrent accepts share a commit
        self._queue = queue
        self._clock = clock
        self._routing = routing
        self._directory = directory
        # Task creations run beside the api's request threads (one each at a time).
        self._beside = ThreadPoolExecutor(max_workers=32, thread_name_prefix="outbox-task")

    def accept(
        self,
        tenant: TenantDoc,
        session_id: str,
        request: SendMessageRequest,
        *,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> Accepted:
        session = self._directory.owned(tenant.id, session_id)
        now = self._clock.now()
        if request.send_at is not None and request.send_at.tzinfo is None:
            raise ValidationFailed("send_at needs a timezone", field="send_at")
        if request.send_at is not None and request.send_at > now + timedelta(days=30):
            raise ValidationFailed("send_at is at most 30 days ahead", field="send_at")
        if request.send_at is not None and request.send_at < now - SEND_AT_PAST_TOLERANCE:
            # A little in the past is a clock apart from ours: it means now. Further back (2001,
            # or -1, read as 1969) is a mistake the client should hear about (docs/messaging.md).
            raise ValidationFailed(
                "send_at is in the past: at most 5 minutes ago (meaning now), at most 30 days "
                "ahead",
                field="send_at",
            )
        message_id = ids.new_message_id()
        doc = MessageDoc(
            id=message_id,
            tenant_id=tenant.id,
            session_id=session.id,
            shard=session.shard,
            to=request.to,
            content=request.content,
            priority=request.priority,
            send_at=request.send_at,
            idempotency_key=idempotency_key,
            wa_id=ids.whatsapp_message_id(message_id),
            status_times={MessageStatus.ACCEPTED.value: now},
            created_at=now,
            updated_at=now,
        )
        return self.submit(doc, idempotency_key=idempotency_key, fingerprint=fingerprint)

    def submit(self, doc: MessageDoc, *, idempotency_key: str | None, fingerprint: str) -> Accepted:
        """Write a new message (a send, or a chat action: wagate/services/chat_actions.py) with
        its pending entry and idempotency record, and create its task beside the write."""
        now = doc.created_at
        # The pending/{id} entry the runner's per-chat order check looks for (PendingSend).
        writes: list[tuple[str, Document]] = [("messages", doc), ("pending", PendingSend.of(doc))]
        record: IdempotencyDoc | None = None
        if idempotency_key is not None:
            record = IdempotencyDoc(
                id=self._idempotency_id(doc.tenant_id, idempotency_key),
                tenant_id=doc.tenant_id,
                message_id=doc.id,
                request_sha256=fingerprint,
                created_at=now,
                expire_at=now + IDEMPOTENCY_TTL,
            )
            writes.insert(0, ("idempotency", record))
        task = self._beside.submit(self._create_quietly, doc)  # beside the write: docstring
        try:
            self._creates.create_together(writes)
        except AlreadyExists:
            self._withdraw(doc, task)
            assert record is not None  # only the idempotency record can exist already
            return Accepted(self._first_result(record, fingerprint), created=False)
        except BaseException:
            self._withdraw(doc, task)
            raise
        task.result()  # "unavailable": the message stays accepted and the sweeper enqueues it
        return Accepted(doc, created=True)

    def _create_quietly(self, doc: MessageDoc) -> TaskCreation:
        try:
            return self.create_task(doc)
        except Exception as e:  # the message is written or withdrawn either way: no 5xx here
            log.error("send task not created", message_id=doc.id, error=str(e))
            return "unavailable"

    def _withdraw(self, doc: MessageDoc, task: Future[TaskCreation]) -> None:
        """The message's write failed (or may not have landed): its task must not live on."""
        if task.result() == "unavailable":
            return
        name = ids.send_task_name(doc.id, doc.task_generation)
        try:
            self._queue.delete(self._queue_of(doc), name)
        except WagateError as e:
            # Still safe while the store answers (the runner finds no message and drops the
            # task); not while it does not (docs/outage.md).
            log.error("task of an unwritten message not withdrawn", task=name, error=e.message)

    def _idempotency_id(self, tenant_id: str, key: str) -> str:
        return hashlib.sha256(f"{tenant_id}\x00{key}".encode()).hexdigest()[:40]

    def replayed(self, tenant_id: str, idempotency_key: str, fingerprint: str) -> MessageDoc | None:
        """The first result of an earlier request with this Idempotency-Key, or None if there
        was none; Conflict if it had another body or is still being written. The api asks at
        its rate limit (functions/limits.py), so that a retry is answered, not refused."""
        first = self._idempotency.get(self._idempotency_id(tenant_id, idempotency_key))
        return None if first is None else self._answer_of(first, fingerprint)

    def _first_result(self, record: IdempotencyDoc, fingerprint: str) -> MessageDoc:
        first = self._idempotency.get(record.id)
        if first is None:  # expired between our write and read: treat as a conflict, retry
            raise Conflict(
                "idempotency record changed concurrently; retry", field="Idempotency-Key"
            )
        return self._answer_of(first, fingerprint)

    def _answer_of(self, first: IdempotencyDoc, fingerprint: str) -> MessageDoc:
        if first.request_sha256 != fingerprint:
            raise Conflict(
                "Idempotency-Key was already used with a different request body",
                field="Idempotency-Key",
            )
        message = self._messages.get(first.message_id)
        if message is None:
            raise Conflict(
                "the first request is still being processed; retry", field="Idempotency-Key"
            )
        return message

    def enqueue(self, doc: MessageDoc) -> bool:
        """Create the send task of a message that is written; False (message stays as it is)
        if Cloud Tasks is down. A task name Cloud Tasks already knows counts as enqueued."""
        return self.create_task(doc) != "unavailable"

    def _queue_of(self, item: PendingSend | MessageDoc) -> str:
        return send_queue(self._routing.queue_prefix, item.shard, item.priority)

    def task_alive(self, item: PendingSend | MessageDoc) -> bool:
        """Its send task is in the queue (waiting for a retry, or its turn in a backlog)."""
        return self._queue.exists(
            self._queue_of(item), ids.send_task_name(item.id, item.task_generation)
        )

    def enqueue_again(self, entry: PendingSend, doc: MessageDoc | None) -> Requeue:
        """A task again for a pending send whose task is gone (the sweeper's stuck pass, the
        runner's takeover nudge): `doc` is its message as read after the task was found gone.
        Under the same name, so Cloud Tasks refuses a second live task; under a new generation
        only when the name is taken by no live task (a finished one Cloud Tasks remembers).
        A finished or missing message: "left_behind", the entry is stale (a lost delete)."""
        if doc is None or doc.status not in PENDING:
            return "left_behind"
        try:
            if doc.task_generation != entry.task_generation and self.task_alive(doc):
                # Regenerated since the entry was written: its task goes by the message's name.
                with contextlib.suppress(WagateError):
                    self._store.patch_many(
                        [("pending", doc.id, {"task_generation": doc.task_generation})]
                    )
                return "alive"
            outcome = self.create_task(doc)
            if outcome == "exists":
                if self.task_alive(doc):  # created meanwhile (by the api, or a sweep)
                    return "alive"
                # The name is remembered from a finished task of this message.
                if self.create_task(self._regenerate(doc)) == "created":
                    return "regenerated"
                return "failed"
        except DependencyUnavailable:
            return "failed"
        return "created" if outcome == "created" else "failed"

    def _regenerate(self, doc: MessageDoc) -> MessageDoc:
        now = self._clock.now()
        updated = self._lifecycle.update(doc.id, lambda state: lifecycle.renew_task(state, now))
        with contextlib.suppress(WagateError):  # the next sweep finds it by the message
            self._store.patch_many(
                [("pending", doc.id, {"task_generation": updated.task_generation})]
            )
        return updated

    def create_task(self, doc: MessageDoc) -> TaskCreation:
        """Create the send task of a message that is written: "exists" when Cloud Tasks refuses
        the name (a live task, or a finished one whose name it still remembers)."""
        task = TaskSpec(
            queue=self._queue_of(doc),
            name=ids.send_task_name(doc.id, doc.task_generation),
            url=self._routing.runner_url(doc.shard) + "/tasks/send",
            body=SendTask(
                message_id=doc.id,
                session_id=doc.session_id,
                to=doc.to,
                created_at=doc.created_at,
                snapshot=SendSnapshot(
                    tenant_id=doc.tenant_id,
                    content=doc.content,
                    priority=doc.priority,
                    send_at=doc.send_at,
                ),
            )
            .model_dump_json()
            .encode(),
            schedule_time=doc.send_at,
            dispatch_deadline_s=self._routing.dispatch_deadline_s,
        )
        try:
            self._queue.enqueue(task)
        except TaskAlreadyExists:
            return "exists"
        except DependencyUnavailable:
            return "unavailable"
        return "created"

    def get(self, tenant_id: str, message_id: str) -> MessageDoc:
        doc = self._messages.get(message_id) if ids.is_valid_id(message_id) else None
        if doc is None or doc.tenant_id != tenant_id:
            raise NotFound(f"message {message_id} not found", field="message_id")
        return doc

    def list_for_session(
        self, tenant_id: str, session_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[MessageDoc], str | None]:
        self._directory.owned(tenant_id, session_id)
        docs = self._messages.query(
            [Where("session_id", "==", session_id)],
            order_by="created_at",
            descending=True,
            limit=limit + 1,
            start_after=cursor,
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1].id if more and docs else None)

    def retry_dead(
        self,
        tenant_id: str,
        *,
        session_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        reason: str | None = None,
        limit: int = 500,
    ) -> list[str]:
        """Re-enqueue dead letters with a fresh task generation (Cloud Tasks remembers names)."""
        where = [Where("tenant_id", "==", tenant_id), Where("status", "==", "dead")]
        if session_id is not None:
            self._directory.owned(tenant_id, session_id)
            where.append(Where("session_id", "==", session_id))
        dead = self._messages.query(where, limit=limit)
        retried: list[str] = []
        now = self._clock.now()
        for doc in dead:
            if since is not None and doc.updated_at < since:
                continue
            if until is not None and doc.updated_at > until:
                continue
            if reason and reason not in (doc.dead_reason or ""):
                continue

            def requeue(state: lifecycle.MessageState) -> lifecycle.MessageChange:
                return lifecycle.requeue(state, now)

            # Pending again: its entry first, so no moment finds it pending without one (an
            # entry whose update then fails is confirmed against the message and dropped).
            entry = PendingSend.of(doc.with_lifecycle(requeue(doc.lifecycle()).state))
            self._pending.put(entry.model_copy(update={"checked_at": now}))
            updated = self._lifecycle.update(doc.id, requeue)
            self.enqueue(updated)
            retried.append(doc.id)
        return retried
