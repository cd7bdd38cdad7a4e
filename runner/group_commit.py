"""Group commit of field patches and batched claims.

Many concurrent send handlers each need one small durable write ("sent", a receipt) and one
claim. Each round trip to Firestore costs far more than its payload, so patches (and claims)
that arrive within a few milliseconds are committed together (runner/batching.py); every
caller still waits until its own write is durable.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from runner.batching import MicroBatcher
from runner.io import Offload
from wagate.contracts import MessageDoc
from wagate.errors import DependencyUnavailable, WagateError
from wagate.ports import Fence, LifecycleStep, Store, StoredMessages

Key = tuple[str, str]


@dataclass(frozen=True)
class _FieldPatch:
    collection: str
    doc_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class _Together:
    """Patches of several documents that must land in one batch (all or none)."""

    patches: tuple[_FieldPatch, ...]


@dataclass(frozen=True)
class _Discard:
    """A best-effort delete: nobody waits for it."""

    collection: str
    doc_id: str


_Write = _FieldPatch | _Together | _Discard


def _patches(write: _Write) -> tuple[_FieldPatch, ...]:
    if isinstance(write, _FieldPatch):
        return (write,)
    return write.patches if isinstance(write, _Together) else ()


class GroupCommit:
    """Blind patches arriving within a few milliseconds share one batch write; `discard`ed
    documents (best-effort deletes: pending/{id} entries, docs/messaging.md) ride along.
    `limit` bounds the patches of one batch, and its deletes."""

    def __init__(self, store: Store, io: Offload, window_s: float = 0.005, limit: int = 400):
        self._store = store
        self._io = io
        self._limit = limit
        self._batcher: MicroBatcher[_Write, None] = MicroBatcher(
            self._commit, window_s=window_s, fits=self._fits
        )
        self.commits = 0

    async def patch(self, collection: str, doc_id: str, fields: dict[str, Any]) -> None:
        await self._batcher.submit(_FieldPatch(collection, doc_id, fields))

    async def patch_together(self, patches: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Several documents' patches in one batch: a chat action's `sent` and the change it
        made to the message it edited or revoked (runner/chat_actions.py)."""
        if len(patches) == 1:
            await self.patch(*patches[0])
            return
        await self._batcher.submit(_Together(tuple(_FieldPatch(c, d, f) for c, d, f in patches)))

    def discard(self, collection: str, doc_id: str) -> None:
        """Delete with the next batch, not waited for: if it is lost, nothing depends on it."""
        self._batcher.submit_unawaited(_Discard(collection, doc_id))

    def _fits(self, group: list[_Write], write: _Write) -> bool:
        if isinstance(write, _Discard):
            return sum(isinstance(w, _Discard) for w in group) < self._limit
        # Patches, a _Together's each counted: they stay within the store's first batch.
        return sum(len(_patches(w)) for w in group) + len(_patches(write)) <= self._limit

    async def _commit(self, writes: list[_Write]) -> list[Exception | None]:
        merged: dict[Key, dict[str, Any]] = {}
        for w in writes:  # one write per document, later fields win
            for p in _patches(w):
                merged.setdefault((p.collection, p.doc_id), {}).update(p.fields)
        patches = [(c, d, f) for (c, d), f in merged.items()]
        deletes = list(
            dict.fromkeys((w.collection, w.doc_id) for w in writes if isinstance(w, _Discard))
        )
        try:
            await self._io(self._store.patch_many, patches, deletes)
        except DependencyUnavailable:
            raise  # an outage fails them all; retrying each alone won't help
        except WagateError:
            return await self._each_alone(writes, deletes)
        self.commits += 1
        return [None] * len(writes)

    async def _each_alone(self, writes: list[_Write], deletes: list[Key]) -> list[Exception | None]:
        """Isolate the failing document(s): each patch is retried alone (deletes cannot fail)."""
        results: list[Exception | None] = []
        for w in writes:
            if isinstance(w, _Discard):
                results.append(None)
                continue
            try:
                alone = [(p.collection, p.doc_id, p.fields) for p in _patches(w)]
                await self._io(self._store.patch_many, alone)
                results.append(None)
            except WagateError as e:
                results.append(e)
        with contextlib.suppress(WagateError):
            await self._io(self._store.patch_many, [], deletes)
        return results


@dataclass(frozen=True)
class _Claim:
    message_id: str
    step: LifecycleStep
    fence: Fence


class GroupClaim:
    """Claims that arrive within a few milliseconds share one fenced transaction (one batch
    read of the shard lease and every message, one commit), instead of one each."""

    def __init__(self, store: Store, io: Offload, window_s: float = 0.003, limit: int = 100):
        self._messages = StoredMessages(store)
        self._io = io
        # A claim whose caller gave up (the store was too slow) is not run: its send went
        # ahead without it.
        self._batcher: MicroBatcher[_Claim, MessageDoc] = MicroBatcher(
            self._transact, window_s=window_s, limit=limit, fits=_fits, skip_abandoned=True
        )
        self.transactions = 0

    async def claim(self, message_id: str, step: LifecycleStep, fence: Fence) -> MessageDoc:
        return await self._batcher.submit(_Claim(message_id, step, fence))

    async def _transact(self, claims: list[_Claim]) -> list[MessageDoc | Exception]:
        steps = {c.message_id: c.step for c in claims}
        results = await self._io(self._messages.update_many, steps, fence=claims[0].fence)
        self.transactions += 1
        return [results[c.message_id] for c in claims]


def _fits(group: list[_Claim], claim: _Claim) -> bool:
    """One transaction, one fence, each message once: the same message twice, or another
    fence, waits for the next round."""
    if not group:
        return True
    return claim.fence == group[0].fence and all(c.message_id != claim.message_id for c in group)
