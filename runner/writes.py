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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.io import Offload
from wagate.contracts import MessageDoc
from wagate.domain.messages import PENDING_VALUES, MessageStatus
from wagate.errors import WagateError
from wagate.ports import Fence, Store, Where

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
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
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


class OrderGate:
    """Answers "is an older, due message to this chat still pending?" for many sends at once:
    one query per few-millisecond window over the shard's pending messages, checked in memory
    per chat. If the window's answer is truncated, each send asks its own precise query."""

    def __init__(
        self, store: Store, io: Offload, shard: int, window_s: float = 0.003, limit: int = 300
    ):
        self._messages = store.collection("messages", MessageDoc)
        self._io = io
        self._shard = shard
        self._window_s = window_s
        self._limit = limit
        self._pending: list[tuple[SendKey, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.queries = 0

    async def has_earlier(self, key: SendKey) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        return await future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                answers = await self._answer([key for key, _ in batch])
            except Exception as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    async def _answer(self, keys: list[SendKey]) -> list[bool]:
        newest = max(k.created_at for k in keys)
        older: list[MessageDoc] = await self._io(
            self._messages.query,
            [
                Where("shard", "==", self._shard),
                Where("status", "in", PENDING_VALUES),
                Where("created_at", "<", newest),
            ],
            order_by="created_at",
            limit=self._limit,
        )
        self.queries += 1
        if len(older) < self._limit:
            return [_blocked(key, older) for key in keys]
        return [await self._precise(key) for key in keys]  # a backlog: ask per chat

    async def _precise(self, key: SendKey) -> bool:
        older: list[MessageDoc] = await self._io(
            self._messages.query,
            [
                Where("session_id", "==", key.session_id),
                Where("to", "==", key.to),
                Where("status", "in", PENDING_VALUES),
                Where("created_at", "<", key.created_at),
            ],
            limit=20,
        )
        self.queries += 1
        return _blocked(key, older)


@dataclass(frozen=True)
class SendKey:
    message_id: str
    session_id: str
    to: str
    created_at: datetime
    now: datetime


def _blocked(key: SendKey, older: list[MessageDoc]) -> bool:
    """An older message to the same chat that is due (a scheduled one does not block)."""
    return any(
        m.session_id == key.session_id
        and m.to == key.to
        and m.created_at < key.created_at
        and m.id != key.message_id
        and (m.send_at is None or m.send_at <= key.now)
        for m in older
    )
