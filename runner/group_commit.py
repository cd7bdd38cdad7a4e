"""Group commit of field patches and batched claims.

Many concurrent send handlers each need one small durable write ("sent", a receipt) and one
claim. Each round trip to Firestore costs far more than its payload, so patches (and claims)
that arrive within a few milliseconds are committed together; every caller still waits until
its own write is durable. Hand-written: it is a few lines over the store port, and no library
does group commit for Firestore.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from runner.io import Offload
from wagate.contracts import MessageDoc
from wagate.errors import DependencyUnavailable, WagateError
from wagate.ports import Fence, Store

Key = tuple[str, str]


class GroupCommit:
    """Blind patches arriving within a few milliseconds share one batch write; `discard`ed
    documents (best-effort deletes: pending/{id} entries, docs/messaging.md) ride along."""

    def __init__(self, store: Store, io: Offload, window_s: float = 0.005, limit: int = 400):
        self._store = store
        self._io = io
        self._window_s = window_s
        self._limit = limit
        self._pending: list[tuple[Key, dict[str, Any], asyncio.Future[None]]] = []
        self._deletes: list[Key] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0

    async def patch(self, collection: str, doc_id: str, fields: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((collection, doc_id), fields, future))
        self._schedule()
        await future

    def discard(self, collection: str, doc_id: str) -> None:
        """Delete with the next batch, not waited for: if it is lost, nothing depends on it."""
        self._deletes.append((collection, doc_id))
        self._schedule()

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._pending or self._deletes:
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            deletes, self._deletes = self._deletes[: self._limit], self._deletes[self._limit :]
            await self._commit(batch, deletes)

    async def _commit(
        self, batch: list[tuple[Key, dict[str, Any], asyncio.Future[None]]], deletes: list[Key]
    ) -> None:
        merged: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        for key, fields, _ in batch:  # one write per document, later fields win
            merged.setdefault(key, {}).update(fields)
        patches = [(c, d, f) for (c, d), f in merged.items()]
        try:
            await self._io(self._store.patch_many, patches, list(dict.fromkeys(deletes)))
            self.commits += 1
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)
        except DependencyUnavailable as e:
            for _, _, future in batch:  # an outage fails them all; retrying each alone won't help
                if not future.done():
                    future.set_exception(e)
        except WagateError:
            # Isolate the failing document(s): retry each one alone (deletes cannot fail).
            for (collection, doc_id), fields, future in batch:
                try:
                    await self._io(self._store.patch_many, [(collection, doc_id, fields)])
                    if not future.done():
                        future.set_result(None)
                except WagateError as e:
                    if not future.done():
                        future.set_exception(e)
            with contextlib.suppress(WagateError):
                await self._io(self._store.patch_many, [], deletes)


ClaimFn = Callable[[MessageDoc], MessageDoc]
Claim = tuple[str, ClaimFn, Fence, "asyncio.Future[MessageDoc]"]


class GroupClaim:
    """Claims that arrive within a few milliseconds share one fenced transaction (one batch
    read of the shard lease and every message, one commit), instead of one each."""

    def __init__(self, store: Store, io: Offload, window_s: float = 0.003, limit: int = 100):
        self._messages = store.collection("messages", MessageDoc)
        self._io = io
        self._window_s = window_s
        self._limit = limit
        self._pending: list[Claim] = []
        self._flusher: asyncio.Task[None] | None = None
        self.transactions = 0

    async def claim(self, message_id: str, fn: ClaimFn, fence: Fence) -> MessageDoc:
        future: asyncio.Future[MessageDoc] = asyncio.get_running_loop().create_future()
        self._pending.append((message_id, fn, fence, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        return await future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._pending:
            # A claim whose caller gave up (the store was too slow) is not run: its send went
            # ahead without it.
            self._pending = [item for item in self._pending if not item[3].done()]
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            if batch:
                await self._run(batch)

    async def _run(
        self, batch: list[tuple[str, ClaimFn, Fence, asyncio.Future[MessageDoc]]]
    ) -> None:
        fence = batch[0][2]
        fns: dict[str, ClaimFn] = {}
        dupes: list[Claim] = []
        for item in batch:
            if item[0] in fns or item[2] != fence:
                dupes.append(item)  # the same message twice, or an older fence: next round
            else:
                fns[item[0]] = item[1]
        self._pending[:0] = dupes

        def apply(doc: MessageDoc) -> MessageDoc:
            return fns[doc.id](doc)

        try:
            results = await self._io(self._messages.update_many, list(fns), apply, fence=fence)
            self.transactions += 1
        except Exception as e:  # the whole transaction failed: every claim in it did
            for message_id, _, _, future in batch:
                if message_id in fns and not future.done():
                    future.set_exception(e)
            return
        for message_id, _, _, future in batch:
            if message_id not in fns or future.done():
                continue
            result = results[message_id]
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
