"""Group commit of field patches, and the index of messages this runner sent.

Many concurrent send handlers each need one small durable write ("sent", a receipt). Each
round trip to Firestore costs far more than its payload, so patches that arrive within a few
milliseconds are committed together in one batch; every caller still waits until its own write
is durable. Hand-written: it is a few lines over the store port, and no library does group
commit for Firestore.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

from runner.io import Offload
from wagate.domain.messages import MessageStatus
from wagate.errors import WagateError
from wagate.ports import Store

Key = tuple[str, str]


class GroupCommit:
    def __init__(self, store: Store, io: Offload, window_s: float = 0.005, limit: int = 400):
        self._store = store
        self._io = io
        self._window_s = window_s
        self._limit = limit
        self._pending: list[tuple[Key, dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0

    async def patch(self, collection: str, doc_id: str, fields: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((collection, doc_id), fields, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        await future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._pending:
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Key, dict[str, Any], asyncio.Future[None]]]) -> None:
        merged: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        for key, fields, _ in batch:  # one write per document, later fields win
            merged.setdefault(key, {}).update(fields)
        patches = [(c, d, f) for (c, d), f in merged.items()]
        try:
            await self._io(self._store.patch_many, patches)
            self.commits += 1
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)
        except WagateError:
            # Isolate the failing document(s): retry each one alone.
            for (collection, doc_id), fields, future in batch:
                try:
                    await self._io(self._store.patch_many, [(collection, doc_id, fields)])
                    if not future.done():
                        future.set_result(None)
                except WagateError as e:
                    if not future.done():
                        future.set_exception(e)


class SentIndex:
    """WhatsApp id → (message id, last status this runner wrote), for messages sent here.

    Receipts name messages by WhatsApp id; this spares a query per receipt. Sends in flight are
    registered so a receipt that overtakes the `sent` write waits for it (statuses only move
    forward). Bounded LRU; a miss falls back to a query.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._entries: OrderedDict[str, tuple[str, MessageStatus]] = OrderedDict()
        self._capacity = capacity
        self._inflight: dict[str, asyncio.Event] = {}

    def get(self, wa_id: str) -> tuple[str, MessageStatus] | None:
        entry = self._entries.get(wa_id)
        if entry is not None:
            self._entries.move_to_end(wa_id)
        return entry

    def put(self, wa_id: str, message_id: str, status: MessageStatus) -> None:
        self._entries[wa_id] = (message_id, status)
        self._entries.move_to_end(wa_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def sending(self, wa_id: str) -> None:
        self._inflight.setdefault(wa_id, asyncio.Event())

    def done(self, wa_id: str) -> None:
        event = self._inflight.pop(wa_id, None)
        if event is not None:
            event.set()

    async def settled(self, wa_id: str, timeout: float = 30.0) -> None:
        event = self._inflight.get(wa_id)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
