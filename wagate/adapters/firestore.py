"""Firestore (native mode) behind ports.Store: typed documents, transactional read-modify-write
with optional shard fencing (firestore_transactions.py), batched writes, cursor queries.

Vendor exceptions become wagate errors here (its table for google_errors.translated) and
nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from pydantic import BaseModel

from wagate.adapters import billing, google_errors
from wagate.adapters import firestore_wire as wire
from wagate.adapters.firestore_transactions import CALL_TIMEOUT_S as CALL_TIMEOUT_S
from wagate.adapters.firestore_transactions import RETRY as _RETRY
from wagate.adapters.firestore_transactions import check_fence, commit_if_unchanged
from wagate.adapters.google_errors import Rule
from wagate.adapters.guard import DependencyGuard
from wagate.contracts import Document
from wagate.errors import (
    AlreadyExists,
    Conflict,
    DependencyUnavailable,
    Internal,
    NotFound,
)
from wagate.ports import Fence, Where, must_exist

D = TypeVar("D", bound=Document)

BATCH_LIMIT = 500
SWAP_ATTEMPTS = 5


def make_client(project_id: str) -> firestore.Client:
    """A client for the emulator (FIRESTORE_EMULATOR_HOST) or the real service."""
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        client = firestore.Client(project=project_id, credentials=AnonymousCredentials())
    else:
        client = firestore.Client(project=project_id)
    billing.count_firestore(client)  # benchmarks only (WAGATE_COUNT_OPERATIONS)
    return client


def encode(value: Any) -> Any:
    """pydantic (python mode) → Firestore values: enums by value, URLs etc. as strings."""
    if isinstance(value, BaseModel):
        return encode(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool | bytes | datetime):
        return value
    return str(value)


def to_fields(doc: Document) -> dict[str, Any]:
    fields: dict[str, Any] = encode(doc.model_dump(mode="python", exclude={"id"}))
    return fields


_ERRORS: list[Rule] = [
    (gexc.AlreadyExists, lambda what, e: AlreadyExists(f"{what} already exists")),
    (gexc.NotFound, lambda what, e: NotFound(f"{what} not found")),
    (
        (gexc.Aborted, gexc.Conflict),
        lambda what, e: Conflict(f"{what}: concurrent modification, retry", retry_after=1),
    ),
    (
        (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.RetryError,
            gexc.InternalServerError,
            gexc.TooManyRequests,
        ),
        lambda what, e: DependencyUnavailable(
            f"Firestore unavailable during {what}", retry_after=5
        ),
    ),
    # Our query or data is wrong (e.g. a missing index): a bug, not an outage.
    (
        (gexc.FailedPrecondition, gexc.InvalidArgument),
        lambda what, e: Internal(f"Firestore refused {what}: {e.message}"),
    ),
    (
        gexc.GoogleAPICallError,
        lambda what, e: DependencyUnavailable(f"Firestore error during {what}: {e.message}"),
    ),
]


def translated(what: str) -> AbstractContextManager[None]:
    """Vendor exceptions → wagate errors."""
    return google_errors.translated(what, _ERRORS)


def write_changes(transaction: Any, ref: Any, snap: Any, new: Document) -> None:
    """Inside a transaction: write `new` over the document `snap` read, sending only the
    top-level fields that changed (a claim changes 4 of a message's 20). The client library
    encodes every value it sends into protobuf in Python, so a whole-document set spent most of
    a claim's CPU re-encoding the content it did not change."""
    fields = to_fields(new)
    if not snap.exists:
        transaction.set(ref, fields)
        return
    stored = snap.to_dict() or {}
    changes: dict[str, Any] = {k: v for k, v in fields.items() if k not in stored or stored[k] != v}
    changes.update({k: firestore.DELETE_FIELD for k in stored if k not in fields})
    if changes:
        add_update(transaction, ref, top_level(changes))


def add_create(batch: Any, ref: Any, fields: dict[str, Any]) -> None:
    """batch.create(ref, fields), encoded without proto-plus where the data allows."""
    _add_write(batch, wire.create_pb, batch.create, ref, fields)


def add_update(batch: Any, ref: Any, field_updates: dict[str, Any]) -> None:
    """batch.update(ref, field_updates) (a batch or a transaction), likewise."""
    _add_write(batch, wire.update_pb, batch.update, ref, field_updates)


def _add_write(
    batch: Any,
    encode: Callable[[str, dict[str, Any]], Any],
    library: Callable[[Any, dict[str, Any]], Any],
    ref: Any,
    fields: dict[str, Any],
) -> None:
    """The write firestore_wire encodes, or the library's own for what it leaves
    (`Unencodable`). `_add_write_pbs` is the batch's documented hook for added writes."""
    try:
        pb = encode(ref._document_path, fields)
    except wire.Unencodable:
        library(ref, fields)
        return
    batch._add_write_pbs([pb])


def top_level(fields: dict[str, Any]) -> dict[str, Any]:
    """Field names as update() paths: each top-level field replaced whole, never read as a
    dotted path into a map."""
    return {FieldPath(k).to_api_repr(): v for k, v in fields.items()}


class FirestoreRepository(Generic[D]):
    def __init__(
        self,
        client: firestore.Client,
        collection: firestore.CollectionReference,
        model: type[D],
        guard: DependencyGuard,
    ) -> None:
        self._client = client
        self._coll = collection
        self._model = model
        self._path = collection.id
        self._guard = guard

    def _decode(self, snap: Any) -> D:
        data = snap.to_dict() or {}
        data["id"] = snap.id
        return self._model.model_validate(data)

    def get(self, doc_id: str) -> D | None:
        with self._guard.call("get"), translated(f"{self._path}/{doc_id}"):
            snap = self._coll.document(doc_id).get(retry=_RETRY, timeout=CALL_TIMEOUT_S)
        return self._decode(snap) if snap.exists else None

    def get_many(self, doc_ids: Sequence[str]) -> list[D]:
        if not doc_ids:
            return []
        refs = [self._coll.document(i) for i in doc_ids]
        with self._guard.call("get_many"), translated(f"{self._path} (batch get)"):
            snaps = list(self._client.get_all(refs, retry=_RETRY, timeout=CALL_TIMEOUT_S))
        by_id = {s.id: self._decode(s) for s in snaps if s.exists}
        return [by_id[i] for i in doc_ids if i in by_id]

    def create(self, doc: D) -> None:
        batch = self._client.batch()  # what DocumentReference.create does, with add_create
        add_create(batch, self._coll.document(doc.id), to_fields(doc))
        with self._guard.call("create"), translated(f"{self._path}/{doc.id}"):
            wire.commit(batch, timeout=CALL_TIMEOUT_S)

    def put(self, doc: D) -> None:
        with self._guard.call("put"), translated(f"{self._path}/{doc.id}"):
            self._coll.document(doc.id).set(to_fields(doc), retry=_RETRY, timeout=CALL_TIMEOUT_S)

    def put_many(self, docs: Sequence[D]) -> None:
        for start in range(0, len(docs), BATCH_LIMIT):
            batch = self._client.batch()
            for doc in docs[start : start + BATCH_LIMIT]:
                batch.set(self._coll.document(doc.id), to_fields(doc))
            with self._guard.call("batch_write"), translated(f"{self._path} (batch write)"):
                wire.commit(batch, retry=_RETRY, timeout=CALL_TIMEOUT_S)

    def upsert(self, doc_id: str, fn: Callable[[D | None], D], *, fence: Fence | None = None) -> D:
        ref = self._coll.document(doc_id)
        result: list[D] = []

        def build(batch: Any, snaps: dict[str, Any]) -> None:
            snap = snaps[ref._document_path]
            if fence is not None:
                check_fence(self._client, fence)
            current = self._decode(snap) if snap.exists else None
            new = fn(current).model_copy(update={"id": doc_id})
            write_changes(batch, ref, snap, new)
            result[:] = [new]

        with self._guard.call("transaction"), translated(f"{self._path}/{doc_id} (transaction)"):
            commit_if_unchanged(self._client, [ref], build)
        return result[0]

    def update(self, doc_id: str, fn: Callable[[D], D], *, fence: Fence | None = None) -> D:
        return self.upsert(doc_id, must_exist(f"{self._path}/{doc_id}", fn), fence=fence)

    def swap(self, doc_id: str, fn: Callable[[D | None], D]) -> D:
        """A compare-and-set on the document's update time: a plain read, then a write with a
        precondition (`exists=False` for a new document). No transaction, so nothing is locked
        between the two: a runner killed in its lease renewal leaves the lease free for the
        next one (docs/decisions.md, "The fence is read without a lock")."""
        ref = self._coll.document(doc_id)
        with self._guard.call("swap"), translated(f"{self._path}/{doc_id} (swap)"):
            for _ in range(SWAP_ATTEMPTS):
                snap = ref.get(timeout=CALL_TIMEOUT_S)
                current = self._decode(snap) if snap.exists else None
                new = fn(current).model_copy(update={"id": doc_id})
                fields = to_fields(new)
                try:
                    if snap.exists:
                        ref.update(
                            top_level(fields),
                            option=self._client.write_option(last_update_time=snap.update_time),
                            timeout=CALL_TIMEOUT_S,
                        )
                    else:
                        ref.create(fields, timeout=CALL_TIMEOUT_S)
                    return new
                except (gexc.FailedPrecondition, gexc.AlreadyExists):
                    continue  # changed since the read: read again
        raise Conflict(f"{self._path}/{doc_id} kept changing; retry", field="id", retry_after=1)

    def update_many(
        self, doc_ids: Sequence[str], fn: Callable[[D], D], *, fence: Fence | None = None
    ) -> dict[str, D | Exception]:
        refs = [self._coll.document(i) for i in doc_ids]
        results: dict[str, D | Exception] = {}

        def build(batch: Any, snaps: dict[str, Any]) -> None:
            results.clear()
            if fence is not None:
                check_fence(self._client, fence)
            for ref in refs:
                snap = snaps.get(ref._document_path)
                if snap is None or not snap.exists:
                    results[ref.id] = NotFound(f"{self._path}/{ref.id} does not exist")
                    continue
                try:
                    new = fn(self._decode(snap)).model_copy(update={"id": ref.id})
                except Exception as e:  # recorded for this document; the others go on
                    results[ref.id] = e
                    continue
                write_changes(batch, ref, snap, new)
                results[ref.id] = new

        with (
            self._guard.call("transaction"),
            translated(f"{self._path} ({len(refs)} documents, transaction)"),
        ):
            commit_if_unchanged(self._client, refs, build)
        return results

    def delete(self, doc_id: str) -> None:
        with self._guard.call("delete"), translated(f"{self._path}/{doc_id}"):
            self._coll.document(doc_id).delete(retry=_RETRY, timeout=CALL_TIMEOUT_S)

    def patch(self, doc_id: str, fields: dict[str, Any]) -> None:
        with self._guard.call("patch"), translated(f"{self._path}/{doc_id} (patch)"):
            self._coll.document(doc_id).update(encode(fields), timeout=CALL_TIMEOUT_S)

    def count(self, where: Sequence[Where] = ()) -> int:
        q: Any = self._coll
        for w in where:
            q = q.where(filter=FieldFilter(w.field, w.op, encode(w.value)))
        with self._guard.call("count"), translated(f"{self._path} (count)"):
            result = q.count().get(timeout=CALL_TIMEOUT_S)
        return int(result[0][0].value)

    def query(
        self,
        where: Sequence[Where] = (),
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        start_after: str | None = None,
    ) -> list[D]:
        q: Any = self._coll
        for w in where:
            q = q.where(filter=FieldFilter(w.field, w.op, encode(w.value)))
        if order_by:
            direction = firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING
            # "id" is the document key, not a stored field.
            q = q.order_by("__name__" if order_by == "id" else order_by, direction=direction)
        with self._guard.call("query"), translated(f"{self._path} (query)"):
            if start_after is not None:
                cursor = self._coll.document(start_after).get(timeout=CALL_TIMEOUT_S)
                if not cursor.exists:
                    return []
                q = q.start_after(cursor)
            if limit is not None:
                q = q.limit(limit)
            return [self._decode(s) for s in q.stream(retry=_RETRY, timeout=CALL_TIMEOUT_S)]


class FirestoreStore:
    """ports.Store on Firestore."""

    def __init__(self, client: firestore.Client, guard: DependencyGuard | None = None) -> None:
        self.client = client
        self.guard = guard or DependencyGuard("firestore")

    def collection(self, name: str, model: type[D]) -> FirestoreRepository[D]:
        return FirestoreRepository(self.client, self.client.collection(name), model, self.guard)

    def subcollection(
        self, parent: str, parent_id: str, name: str, model: type[D]
    ) -> FirestoreRepository[D]:
        coll = self.client.collection(parent).document(parent_id).collection(name)
        return FirestoreRepository(self.client, coll, model, self.guard)

    def patch_many(
        self,
        patches: Sequence[tuple[str, str, dict[str, Any]]],
        deletes: Sequence[tuple[str, str]] = (),
    ) -> None:
        writes: list[tuple[str, str, dict[str, Any] | None]] = [*patches]
        writes += [(name, doc_id, None) for name, doc_id in deletes]
        for start in range(0, len(writes), BATCH_LIMIT):
            batch = self.client.batch()
            for name, doc_id, fields in writes[start : start + BATCH_LIMIT]:
                ref = self.client.collection(name).document(doc_id)
                if fields is None:
                    batch.delete(ref)
                else:
                    add_update(batch, ref, encode(fields))
            with self.guard.call("batch_write"), translated(f"{len(writes)} patches"):
                wire.commit(batch, timeout=CALL_TIMEOUT_S)

    def create_together(self, docs: Sequence[tuple[str, Document]]) -> None:
        batch = self.client.batch()
        for name, doc in docs:
            add_create(batch, self.client.collection(name).document(doc.id), to_fields(doc))
        with self.guard.call("batch_write"), translated(", ".join(f"{n}/{d.id}" for n, d in docs)):
            wire.commit(batch, timeout=CALL_TIMEOUT_S)

    def ping(self) -> None:
        with self.guard.call("ping"), translated("ping"):
            self.client.collection("_wagate").document("ping").get(timeout=3.0)
