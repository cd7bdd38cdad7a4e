"""In-memory adapters for unit tests: the same semantics as the real ones (transactions,
fences, generations, named-task deduplication), none of the I/O. Never used in production.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from wagate.contracts import Document, ShardLease
from wagate.errors import (
    AlreadyExists,
    FencedOut,
    NotFound,
    StaleGeneration,
    TaskAlreadyExists,
)
from wagate.ports import Blob, BlobInfo, Fence, TaskSpec, Where, must_exist

D = TypeVar("D", bound=Document)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "in": lambda a, b: a in b,
}


def _field(doc: Document, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


class MemoryRepository(Generic[D]):
    def __init__(self, store: MemoryStore, path: str, model: type[D]) -> None:
        self._store = store
        self._path = path
        self._model = model
        self._docs: dict[str, D] = {}

    def _check_fence(self, fence: Fence | None) -> None:
        if fence is None:
            return
        lease = self._store.collection("shards", ShardLease)._docs.get(str(fence.shard))
        if lease is None or lease.token != fence.token:
            raise FencedOut(f"shard {fence.shard}: fencing token {fence.token} is stale")

    def get(self, doc_id: str) -> D | None:
        with self._store.lock:
            doc = self._docs.get(doc_id)
            return doc.model_copy(deep=True) if doc else None

    def get_many(self, doc_ids: Sequence[str]) -> list[D]:
        with self._store.lock:
            return [self._docs[i].model_copy(deep=True) for i in doc_ids if i in self._docs]

    def create(self, doc: D) -> None:
        with self._store.lock:
            if doc.id in self._docs:
                raise AlreadyExists(f"{self._path}/{doc.id} already exists", field="id")
            self._docs[doc.id] = doc.model_copy(deep=True)

    def put(self, doc: D) -> None:
        with self._store.lock:
            self._docs[doc.id] = doc.model_copy(deep=True)

    def put_many(self, docs: Sequence[D]) -> None:
        with self._store.lock:
            for doc in docs:
                self._docs[doc.id] = doc.model_copy(deep=True)

    def upsert(self, doc_id: str, fn: Callable[[D | None], D], *, fence: Fence | None = None) -> D:
        with self._store.lock:
            self._check_fence(fence)
            current = self._docs.get(doc_id)
            new = fn(current.model_copy(deep=True) if current else None)
            self._docs[doc_id] = new.model_copy(deep=True, update={"id": doc_id})
            return self._docs[doc_id].model_copy(deep=True)

    def update(self, doc_id: str, fn: Callable[[D], D], *, fence: Fence | None = None) -> D:
        return self.upsert(doc_id, must_exist(f"{self._path}/{doc_id}", fn), fence=fence)

    def swap(self, doc_id: str, fn: Callable[[D | None], D]) -> D:
        return self.upsert(doc_id, fn)  # one lock here: nothing can change in between

    def update_many(
        self, doc_ids: Sequence[str], fn: Callable[[D], D], *, fence: Fence | None = None
    ) -> dict[str, D | Exception]:
        with self._store.lock:
            self._check_fence(fence)
            results: dict[str, D | Exception] = {}
            for doc_id in doc_ids:
                current = self._docs.get(doc_id)
                if current is None:
                    results[doc_id] = NotFound(f"{self._path}/{doc_id} does not exist")
                    continue
                try:
                    new = fn(current.model_copy(deep=True)).model_copy(update={"id": doc_id})
                except Exception as e:
                    results[doc_id] = e
                    continue
                self._docs[doc_id] = new.model_copy(deep=True)
                results[doc_id] = new
            return results

    def delete(self, doc_id: str) -> None:
        with self._store.lock:
            self._docs.pop(doc_id, None)

    def patch(self, doc_id: str, fields: dict[str, Any]) -> None:
        with self._store.lock:
            current = self._docs.get(doc_id)
            if current is None:
                raise NotFound(f"{self._path}/{doc_id} does not exist")
            data = current.model_dump(mode="python")
            for path, value in fields.items():
                target = data
                *parents, leaf = path.split(".")
                for part in parents:
                    target = target.setdefault(part, {})
                target[leaf] = value
            self._docs[doc_id] = self._model.model_validate(data)

    def count(self, where: Sequence[Where] = ()) -> int:
        with self._store.lock:
            return sum(1 for d in self._docs.values() if all(_matches(d, w) for w in where))

    def query(
        self,
        where: Sequence[Where] = (),
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        start_after: str | None = None,
    ) -> list[D]:
        with self._store.lock:
            docs = [d for d in self._docs.values() if all(_matches(d, w) for w in where)]
            key = order_by or "id"
            docs.sort(key=lambda d: (_field(d, key), d.id), reverse=descending)
            if start_after is not None:
                ids = [d.id for d in docs]
                docs = docs[ids.index(start_after) + 1 :] if start_after in ids else []
            if limit is not None:
                docs = docs[:limit]
            return [d.model_copy(deep=True) for d in docs]


def _matches(doc: Document, where: Where) -> bool:
    value = _field(doc, where.field)
    if hasattr(value, "value") and isinstance(where.value, str):
        value = value.value
    return _OPS[where.op](value, where.value)


class MemoryStore:
    """ports.Store in memory."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._collections: dict[str, MemoryRepository[Any]] = {}
        self.available = True

    def collection(self, name: str, model: type[D]) -> MemoryRepository[D]:
        with self.lock:
            if name not in self._collections:
                self._collections[name] = MemoryRepository(self, name, model)
            repo: MemoryRepository[D] = self._collections[name]
            return repo

    def subcollection(
        self, parent: str, parent_id: str, name: str, model: type[D]
    ) -> MemoryRepository[D]:
        return self.collection(f"{parent}/{parent_id}/{name}", model)

    def patch_many(
        self,
        patches: Sequence[tuple[str, str, dict[str, Any]]],
        deletes: Sequence[tuple[str, str]] = (),
    ) -> None:
        with self.lock:
            for name, doc_id, _ in patches:
                repo = self._collections.get(name)
                if repo is None or doc_id not in repo._docs:
                    raise NotFound(f"{name}/{doc_id} does not exist")
            for name, doc_id, fields in patches:
                self._collections[name].patch(doc_id, fields)
            for name, doc_id in deletes:
                repo = self._collections.get(name)
                if repo is not None:
                    repo._docs.pop(doc_id, None)

    def create_together(self, docs: Sequence[tuple[str, Document]]) -> None:
        with self.lock:
            repos = [(self.collection(name, type(doc)), doc) for name, doc in docs]
            for repo, doc in repos:
                if doc.id in repo._docs:
                    raise AlreadyExists(f"{repo._path}/{doc.id} already exists", field="id")
            for repo, doc in repos:
                repo._docs[doc.id] = doc.model_copy(deep=True)

    def ping(self) -> None:
        return None


class MemoryBlobStore:
    """ports.BlobStore in memory, with object versioning."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, list[Blob]] = {}  # oldest first; last is live unless deleted
        self._live: dict[str, Blob] = {}
        self._next_generation = 1_000_000

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = None,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        with self._lock:
            live = self._live.get(name)
            if if_generation_match is not None:
                current = live.generation if live else 0
                if current != if_generation_match:
                    raise StaleGeneration(
                        f"{name}: generation {if_generation_match} is stale (now {current})"
                    )
            self._next_generation += 1
            blob = Blob(name, bytes(data), self._next_generation, dict(metadata or {}))
            self._versions.setdefault(name, []).append(blob)
            self._live[name] = blob
            return blob.generation

    def get(self, name: str, *, generation: int | None = None) -> Blob:
        with self._lock:
            if generation is None:
                if name in self._live:
                    return self._live[name]
            else:
                for blob in self._versions.get(name, []):
                    if blob.generation == generation:
                        return blob
            raise NotFound(f"object {name} (generation {generation}) not found")

    def list_objects(self, prefix: str = "") -> list[BlobInfo]:
        with self._lock:
            return [
                BlobInfo(b.name, b.generation, len(b.data), None, b.metadata)
                for n, b in sorted(self._live.items())
                if n.startswith(prefix)
            ]

    def head(self, name: str) -> BlobInfo:
        with self._lock:
            blob = self._live.get(name)
            if blob is None:
                raise NotFound(f"object {name} not found")
            return BlobInfo(blob.name, blob.generation, len(blob.data), None, blob.metadata)

    def versions(self, name: str) -> list[BlobInfo]:
        with self._lock:
            return [
                BlobInfo(b.name, b.generation, len(b.data), None, b.metadata)
                for b in reversed(self._versions.get(name, []))
            ]

    def delete(self, name: str, *, generation: int | None = None) -> None:
        with self._lock:
            if generation is None:
                self._live.pop(name, None)
            else:
                self._versions[name] = [
                    b for b in self._versions.get(name, []) if b.generation != generation
                ]
                if name in self._live and self._live[name].generation == generation:
                    del self._live[name]

    def ping(self) -> None:
        return None


class MemoryTaskQueue:
    """ports.TaskQueue in memory: records tasks, refuses reused names (like Cloud Tasks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks: list[TaskSpec] = []
        self.ran: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self._names: set[tuple[str, str]] = set()

    def enqueue(self, task: TaskSpec) -> str:
        with self._lock:
            if (task.queue, task.name) in self._names:
                raise TaskAlreadyExists(f"task {task.name} already exists in {task.queue}")
            self._names.add((task.queue, task.name))
            self.tasks.append(task)
            return f"queues/{task.queue}/tasks/{task.name}"

    def run_now(self, queue: str, name: str) -> None:
        with self._lock:
            if not any(t.queue == queue and t.name == name for t in self.tasks):
                raise NotFound(f"task {name} not found")
            self.ran.append((queue, name))

    def exists(self, queue: str, name: str) -> bool:
        with self._lock:
            return any(t.queue == queue and t.name == name for t in self.tasks)

    def delete(self, queue: str, name: str) -> None:
        with self._lock:  # the name stays refused, as in Cloud Tasks
            self.tasks = [t for t in self.tasks if (t.queue, t.name) != (queue, name)]
            self.deleted.append((queue, name))

    def matching(self, pattern: str) -> list[TaskSpec]:
        with self._lock:
            return [t for t in self.tasks if fnmatch.fnmatch(t.name, pattern)]

    def ping(self) -> None:
        return None


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now += timedelta(seconds=seconds)
        self._mono += seconds
