"""The interfaces the programs depend on; adapters implement them, one vendor each.

Storage ports are synchronous: the api/sweeper functions are synchronous WSGI code, and the
runner calls them from a bounded thread pool (`runner.io`), which costs microseconds next to
a store round trip of milliseconds. The engine port is asynchronous: it is a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from wagate.contracts import Document, MessageDoc, ShardLease
from wagate.contracts.directory import RunnerQuery
from wagate.domain.chat_actions import ChatAction
from wagate.domain.directory import (
    GroupInfo,
    NumberStatus,
    ParticipantAction,
    ParticipantResult,
)
from wagate.domain.events import EngineEvent, MessageAck
from wagate.domain.messages import MessageChange, MessageState
from wagate.errors import NotFound

D = TypeVar("D", bound=Document)

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in"]


@dataclass(frozen=True)
class Where:
    field: str
    op: Op
    value: Any


@dataclass(frozen=True)
class Fence:
    """A write is valid only while `shards/{shard}` still carries this fencing token."""

    shard: int
    token: int


def must_exist(what: str, fn: Callable[[D], D]) -> Callable[[D | None], D]:
    """Turns an update function into an upsert one that refuses a missing document."""

    def strict(current: D | None) -> D:
        if current is None:
            raise NotFound(f"{what} does not exist")
        return fn(current)

    return strict


@runtime_checkable
class Repository(Protocol[D]):
    """One collection of typed documents."""

    def get(self, doc_id: str) -> D | None: ...

    def get_many(self, doc_ids: Sequence[str]) -> list[D]: ...

    def create(self, doc: D) -> None:
        """Raises AlreadyExists if the id is taken."""

    def put(self, doc: D) -> None: ...

    def put_many(self, docs: Sequence[D]) -> None:
        """Batched upsert (no read), for bulk writes."""

    def update(self, doc_id: str, fn: Callable[[D], D], *, fence: Fence | None = None) -> D:
        """Read-modify-write in one transaction. `fn` may run more than once (retries), must
        be pure, and may raise a WagateError to abort. NotFound if the document is missing;
        FencedOut if `fence` no longer holds."""

    def upsert(self, doc_id: str, fn: Callable[[D | None], D], *, fence: Fence | None = None) -> D:
        """Like update, but `fn` also runs (with None) when the document does not exist."""

    def swap(self, doc_id: str, fn: Callable[[D | None], D]) -> D:
        """Like upsert, but without taking a lock: read the document, then write `fn`'s result
        only if the document has not changed since (retrying a few times if it has; Conflict
        if it keeps changing). For a document whose writer may die mid-write and must not
        leave it locked behind: the shard leases."""

    def update_many(
        self, doc_ids: Sequence[str], fn: Callable[[D], D], *, fence: Fence | None = None
    ) -> dict[str, D | Exception]:
        """`update` of several documents in ONE transaction: per id the new document, or the
        error `fn` raised for it (that document is left as it was; the others are written).
        A missing document maps to NotFound. FencedOut aborts everything."""

    def delete(self, doc_id: str) -> None: ...

    def patch(self, doc_id: str, fields: dict[str, Any]) -> None:
        """Blind partial update of existing fields, no read ("a.b" addresses a map entry).
        NotFound if the document does not exist. For writes whose order the caller owns."""

    def count(self, where: Sequence[Where] = ()) -> int:
        """Number of matching documents (an aggregation query, not a read of each)."""

    def query(
        self,
        where: Sequence[Where] = (),
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        start_after: str | None = None,
    ) -> list[D]:
        """`start_after` is a document id (cursor), used with `order_by`."""


class Store(Protocol):
    """The document database, one Repository per collection (SPEC §2)."""

    def collection(self, name: str, model: type[D]) -> Repository[D]: ...

    def subcollection(
        self, parent: str, parent_id: str, name: str, model: type[D]
    ) -> Repository[D]:
        """e.g. sessions/{id}/inbound."""

    def patch_many(
        self,
        patches: Sequence[tuple[str, str, dict[str, Any]]],
        deletes: Sequence[tuple[str, str]] = (),
    ) -> None:
        """(collection, id, fields) patches in one round trip, applied in order, and
        (collection, id) deletes (a missing document is no error) in the same batch; all or
        none."""

    def create_together(self, docs: Sequence[tuple[str, Document]]) -> None:
        """Create several documents (collection name, doc) atomically in one round trip.
        AlreadyExists (and nothing written) if any of them exists."""

    def ping(self) -> None:
        """Raises DependencyUnavailable if the store cannot be reached."""


LifecycleStep = Callable[[MessageState], MessageChange]


class MessageRepository(Protocol):
    """Outbound messages, changed only by the aggregate's lifecycle steps
    (wagate.domain.messages): the read-modify-write runs in one transaction, so no caller can
    write a status without it."""

    def update(
        self, message_id: str, step: LifecycleStep, *, fence: Fence | None = None
    ) -> MessageDoc:
        """Run `step` on the stored message and write what it changed. `step` may run more than
        once (retries) and may raise to abort. NotFound if the message is missing; FencedOut
        if `fence` no longer holds."""

    def update_many(
        self, steps: Mapping[str, LifecycleStep], *, fence: Fence | None = None
    ) -> dict[str, MessageDoc | Exception]:
        """One step per message id, all in ONE transaction; per id the new document or the
        error its step raised (NotFound if missing). FencedOut aborts everything."""


class StoredMessages:
    """MessageRepository on any Store: both adapters already run Repository.update in one
    transaction (Firestore: commit_if_unchanged; memory: its lock), so the mapping between
    MessageDoc and MessageState lives once, here, not in each adapter."""

    def __init__(self, store: Store) -> None:
        self._docs = store.collection("messages", MessageDoc)

    def update(
        self, message_id: str, step: LifecycleStep, *, fence: Fence | None = None
    ) -> MessageDoc:
        return self._docs.update(
            message_id, lambda d: d.with_lifecycle(step(d.lifecycle()).state), fence=fence
        )

    def update_many(
        self, steps: Mapping[str, LifecycleStep], *, fence: Fence | None = None
    ) -> dict[str, MessageDoc | Exception]:
        def apply(doc: MessageDoc) -> MessageDoc:
            return doc.with_lifecycle(steps[doc.id](doc.lifecycle()).state)

        return self._docs.update_many(list(steps), apply, fence=fence)


class ShardLeases(Protocol):
    """Shard ownership with a monotonic fencing token (SPEC §4 Ownership)."""

    def acquire(self, shard: int, holder: str, ttl: float) -> ShardLease:
        """Take the lease if free or expired (token + 1), or re-take our own. LeaseHeld else."""

    def renew(self, shard: int, holder: str, token: int, ttl: float) -> ShardLease:
        """Extend our grant; FencedOut if someone else took over meanwhile."""

    def release(self, shard: int, holder: str, token: int) -> None: ...

    def current(self, shard: int) -> ShardLease | None: ...


@dataclass(frozen=True)
class Blob:
    name: str
    data: bytes
    generation: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BlobInfo:
    name: str
    generation: int
    size: int
    updated: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class BlobStore(Protocol):
    """One bucket. Generations are GCS object generations; 0 means 'must not exist yet'."""

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = None,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        """Returns the new generation. StaleGeneration if the precondition fails."""

    def get(self, name: str, *, generation: int | None = None) -> Blob:
        """NotFound if absent."""

    def list_objects(self, prefix: str = "") -> list[BlobInfo]: ...

    def head(self, name: str) -> BlobInfo:
        """Metadata of the live object, without its bytes. NotFound if absent."""

    def versions(self, name: str) -> list[BlobInfo]:
        """Every stored generation of `name`, newest first (bucket versioning)."""

    def delete(self, name: str, *, generation: int | None = None) -> None: ...

    def ping(self) -> None: ...


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime


class UrlSigner(Protocol):
    """Short-lived download URLs of one bucket's objects (Cloud Storage V4 signed URLs), so a
    tenant fetches a received file without an API key. Blocking."""

    def sign(self, name: str, ttl_s: int) -> SignedUrl:
        """DependencyUnavailable if the signature cannot be made now."""


@dataclass(frozen=True)
class TaskSpec:
    queue: str
    name: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    schedule_time: datetime | None = None
    dispatch_deadline_s: float | None = None


class TaskQueue(Protocol):
    """Cloud Tasks: named HTTP tasks. The adapter adds authentication (OIDC in the cloud,
    a shared-secret header locally)."""

    def enqueue(self, task: TaskSpec) -> str:
        """Returns the task's full name. TaskAlreadyExists if the name was used before."""

    def run_now(self, queue: str, name: str) -> None:
        """Dispatch a pending task at once, skipping its backoff (Cloud Tasks RunTask).
        NotFound if the task no longer exists (done, or never created)."""

    def exists(self, queue: str, name: str) -> bool:
        """Whether the task is still in its queue (pending or being attempted)."""

    def delete(self, queue: str, name: str) -> None:
        """Delete a task (Cloud Tasks DeleteTask): an attempt under way finishes, but the task
        is never dispatched again. A task that is already gone is not an error."""

    def ping(self) -> None: ...


class CallObserver(Protocol):
    """Told about every call an adapter makes to its dependency (metrics, store latency)."""

    def observe(self, dependency: str, operation: str, seconds: float, ok: bool) -> None:
        """`ok`: the dependency answered. NotFound, Conflict and the like are answers; only a
        DependencyUnavailable (unreachable, timed out, overloaded) is not."""


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class KeyRing(Protocol):
    """AES-256 keys by id; `current_id` encrypts, every id decrypts."""

    @property
    def current_id(self) -> str: ...

    def key(self, key_id: str) -> bytes:
        """NotFound if the id is unknown."""

    def ids(self) -> list[str]: ...


# ---------------------------------------------------------------- WhatsApp engine


class EngineConnection(Protocol):
    """One linked device's socket.

    - `connect()` returns once the outcome is known (first QR, Connected, or a close) and
      reports refusals and timeouts as events (Disconnected(503) / Disconnected(408)).
    - `events()` yields until `close()`, exactly one Disconnected(reason) per socket close, and
      survives a consumer's cancellation; `connect()` may be called again afterwards.
    - Server acks both resolve `send()` and are yielded as MessageAck.
    - Receipts and inbound messages are at-least-once: they are acknowledged to the server
      when the consumer asks for the next event, so consumers deduplicate by id.
    """

    def events(self) -> AsyncIterator[EngineEvent]: ...

    async def connect(self) -> None:
        """Open the socket; with no auth state the engine emits QrCode events."""

    async def send(
        self, wa_id: str, to: str, kind: str, content: dict[str, Any], *, timeout: float
    ) -> MessageAck:
        """Send with a caller-chosen WhatsApp id and wait for the server ack.
        Raises PermanentSendError or TransientSendError (wagate.errors subclasses)."""

    async def act(self, wa_id: str, to: str, action: ChatAction, *, timeout: float) -> MessageAck:
        """A chat action in the chat `to` (wagate.domain.chat_actions): an edit or a revoke is
        a message with its own WhatsApp id, acked like a send; a read or a presence is acked as
        `wa_id` once written. Raises as send(); PermanentSendError if the engine cannot."""

    async def request_pairing_code(self, phone: str) -> str: ...

    async def logout(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class DirectoryQueries(Protocol):
    """The synchronous questions a connected socket answers (docs/messaging.md, "Groups and
    number checks"). A connection that lacks them does not implement this protocol; the runner
    then answers 501. Each raises DependencyUnavailable when the socket is not connected or
    WhatsApp does not answer within `timeout`, NotFound for an unknown group, Forbidden when the
    session may not do it (not an admin)."""

    async def check_numbers(self, numbers: Sequence[str], *, timeout: float) -> list[NumberStatus]:
        """`numbers` are digits (E.164 without +); one NumberStatus each, in order."""

    async def groups(self, *, timeout: float) -> list[GroupInfo]: ...

    async def group(self, jid: str, *, timeout: float) -> GroupInfo: ...

    async def create_group(
        self, subject: str, participants: Sequence[str], *, timeout: float
    ) -> GroupInfo: ...

    async def update_participants(
        self, jid: str, action: ParticipantAction, participants: Sequence[str], *, timeout: float
    ) -> list[ParticipantResult]: ...

    async def invite_code(self, jid: str, *, timeout: float) -> str: ...


class RunnerLink(Protocol):
    """The api's line to a shard's runner (wagate/adapters/runner_client.py)."""

    def ask(self, shard: int, query: RunnerQuery) -> Any:
        """The runner's answer (JSON data); the runner's refusal as the same WagateError;
        DependencyUnavailable when it cannot be reached or does not answer in time."""


class WhatsAppEngine(Protocol):
    def open(self, session_id: str, auth_state: bytes | None) -> EngineConnection: ...

    async def aclose(self) -> None:
        """Release what the engine shares between connections (HTTP session, library)."""
