"""Group commit of field patches, the index of messages this runner sent, batched claims and
order checks, and how a message's status events (sent, failed, dead, receipts) are applied.

Many concurrent send handlers each need one small durable write ("sent", a receipt). Each
round trip to Firestore costs far more than its payload, so patches that arrive within a few
milliseconds are committed together in one batch; every caller still waits until its own write
is durable. Hand-written: it is a few lines over the store port, and no library does group
commit for Firestore.

`MessageEvent` is the journaled form of a status write made while the store was unreachable
(runner/journal.py); `apply_status_events` replays it by the status machine's rules, so a
replay never moves a message backwards and applying it twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from runner.io import Offload
from runner.journal import StoreTimedOut
from wagate.contracts import MessageDoc, MessageError, PendingSend
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import (
    ON_WHATSAPP,
    PENDING,
    MessageStatus,
    advance_by_receipt,
    can_transition,
    chat_key,
    chat_of,
)
from wagate.errors import DependencyUnavailable, WagateError
from wagate.ports import Fence, Store, Where

Key = tuple[str, str]
T = TypeVar("T")

# Store calls on the send path give up after this and the send carries on without the store
# (the adapter's own deadline for reads is 10 s; a claim is a transaction, and a slow but
# working store must not be taken for a dead one).
STORE_READ_TIMEOUT_S = 10.0
STORE_CLAIM_TIMEOUT_S = 15.0


async def within(seconds: float, call: Awaitable[T]) -> T:
    """A store call that does not answer in time is an outage (DependencyUnavailable). Only
    for calls whose late completion is harmless — reads, and the claim (a claim that lands
    after its send went ahead finds the message `sent`, or leaves it `sending` for the
    replayed outcome); writes go through runner/journal.py, which tracks late ones."""
    try:
        return await asyncio.wait_for(call, seconds)
    except TimeoutError:
        raise StoreTimedOut(
            f"the store did not answer within {seconds:.0f}s", retry_after=5
        ) from None


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


class OrderGate:
    """Answers "is an older, due message to this chat still pending?" for many sends at once:
    the sends of a few-millisecond window share one indexed query per 30 chats over the
    pending/{id} entries (PendingSend; `chat in [...]`, index chat, created_at), run
    concurrently, and the entries found are confirmed against their messages. Such a query reads
    a few documents per chat, where one over the whole shard would read (and bill, and parse) its
    whole backlog on every window; and the Firestore emulator scans the collection for each
    query, so one per chat cost it a scan per message (docs/benchmarks.md).

    It also remembers which messages it knows to be pending (tasks seen here, and what its
    queries returned), so that while the store is unreachable `known_earlier` can still keep
    the order among the messages this runner knows of (docs/outage.md). Messages this runner
    already sent (the SentIndex) never count as pending, even before the store has heard.
    """

    def __init__(self, store: Store, io: Offload, window_s: float = 0.003):
        self._store = store
        self._messages = store.collection("messages", MessageDoc)
        self._entries = store.collection("pending", PendingSend)
        self._io = io
        self._window_s = window_s
        self._pending: list[tuple[SendKey, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._known: dict[Key, dict[str, _Known]] = {}
        # chat → (created_at below which the last query returned every pending message, when)
        self._covered: OrderedDict[Key, tuple[datetime, float]] = OrderedDict()
        # What this runner can vouch for without the store (blocked_without_store): per chat,
        # the highest bound below which a query returned every pending message; and whether it
        # listed every pending entry of the shard since it won the lease.
        self._complete: OrderedDict[Key, datetime] = OrderedDict()
        self._shard_listed = False
        self.index: SentIndex | None = None
        self.queries = 0
        self.answered_from_memory = 0

    async def has_earlier(self, key: SendKey) -> bool:
        covered = self._covered.get((key.session_id, key.to))
        if (
            covered is not None
            and key.created_at <= covered[0]
            and time.monotonic() - covered[1] <= KNOWN_FRESH_S
        ):
            # A query moments ago returned every pending message of this chat older than this
            # one, and this runner has seen each of those finish or not since (`finished`): no
            # need to ask again. A message cannot become pending below that point later (only
            # an operator's retry-dead does that), so this holds while it is fresh.
            self.answered_from_memory += 1
            return self.known_earlier(key)
        if self.known_earlier(key, KNOWN_FRESH_S):
            # A predecessor this runner learned of moments ago is still pending: the answer
            # is "wait" without asking the store. After a restart every pending task of the
            # shard arrives at once; this keeps that to about one query per chat, not one per
            # task. Only "wait" is answered so: a stale one delays, it never reorders.
            self.answered_from_memory += 1
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        return await future

    # ------------------------------------------------------------ what this runner knows

    def saw(self, key: SendKey, send_at: datetime | None) -> None:
        """A task for this message reached the runner: it is pending until `finished`."""
        chat = self._known.setdefault((key.session_id, key.to), {})
        chat[key.message_id] = _Known(key.created_at, send_at, key.wa_id)

    def forget_all(self) -> None:
        """A new lease: what was known under the last one may have changed meanwhile."""
        self._known.clear()
        self._covered.clear()
        self._complete.clear()
        self._shard_listed = False

    def listed(self, entries: Sequence[PendingSend]) -> None:
        """Pending entries of the shard listed after winning the lease (the takeover nudge).
        They count only when the store is away: for the "wait" answered from memory they are
        stale at once (some finished while the listing ran)."""
        for entry in entries:
            wa_id = whatsapp_message_id(entry.id)
            if not self._settled(wa_id):
                chat = self._known.setdefault(chat_of(entry.chat), {})
                chat.setdefault(
                    entry.id, _Known(entry.created_at, entry.send_at, wa_id, float("-inf"))
                )

    def shard_listed(self) -> None:
        """Every pending entry of the shard has been `listed` since the lease was won."""
        self._shard_listed = True

    def blocked_without_store(self, key: SendKey) -> bool:
        """has_earlier while the store is away: `known_earlier`, if this runner knows every
        pending predecessor the chat may have, that is, it listed the whole shard's pending
        entries since it won the lease, or a query returned the chat's pending messages below
        this send's age. Otherwise it cannot tell: blocked (a runner that took over while the
        store was slow must not send ahead of messages it has not heard of)."""
        complete = self._complete.get((key.session_id, key.to))
        if not self._shard_listed and (complete is None or complete < key.created_at):
            return True
        return self.known_earlier(key)

    def finished(self, message_id: str, session_id: str, to: str) -> None:
        chat = self._known.get((session_id, to))
        if chat is not None:
            chat.pop(message_id, None)
            if not chat:
                del self._known[(session_id, to)]

    def known_earlier(self, key: SendKey, fresher_than_s: float | None = None) -> bool:
        """has_earlier without the store: only the messages this runner knows of (learned
        within `fresher_than_s`, if given)."""
        chat = self._known.get((key.session_id, key.to), {})
        oldest = None if fresher_than_s is None else time.monotonic() - fresher_than_s
        return any(
            message_id != key.message_id
            and known.created_at < key.created_at
            and (known.send_at is None or known.send_at <= key.now)
            and (oldest is None or known.seen_at >= oldest)
            and not self._settled(known.wa_id)
            for message_id, known in chat.items()
        )

    def _settled(self, wa_id: str) -> bool:
        entry = self.index.get(wa_id) if self.index is not None and wa_id else None
        return entry is not None and entry[1] in ON_WHATSAPP

    def _learn(self, chat: Key, older: list[_Pending], covers: datetime) -> None:
        """Remember what a chat's query returned. It returned every pending message of the
        chat created before `covers`: forget the others known from before (they are not
        pending any more), and remember that, for a while, the chat's order below `covers`
        can be answered from what this runner knows (has_earlier)."""
        returned = {m.id for m in older}
        known = self._known.get(chat, {})
        for message_id in [
            i for i, k in known.items() if k.created_at < covers and i not in returned
        ]:
            del known[message_id]
        now = time.monotonic()
        complete = self._complete.get(chat)
        self._complete[chat] = covers if complete is None else max(complete, covers)
        self._complete.move_to_end(chat)
        while len(self._complete) > COMPLETE_CAPACITY:
            self._complete.popitem(last=False)
        self._covered[chat] = (covers, now)
        self._covered.move_to_end(chat)
        while self._covered and now - next(iter(self._covered.values()))[1] > KNOWN_FRESH_S:
            self._covered.popitem(last=False)
        for m in older:
            if not self._settled(m.wa_id):
                known[m.id] = _Known(m.created_at, m.send_at, m.wa_id)
        if known:
            self._known[chat] = known
        else:
            self._known.pop(chat, None)

    # ------------------------------------------------------------ the store

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._pending:
            batch, self._pending = [(k, f) for k, f in self._pending if not f.done()], []
            if not batch:
                continue
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
        chats: dict[Key, list[SendKey]] = {}
        for key in keys:
            chats.setdefault((key.session_id, key.to), []).append(key)
        answers: dict[tuple[str, datetime], bool] = {}

        async def some_chats(group: list[Key]) -> None:
            group_keys = [key for chat in group for key in chats[chat]]
            newest = max(key.created_at for key in group_keys)
            found = await self._oldest_pending(group, newest, in_hand=group_keys)
            for chat in group:
                older = [m for m in found.messages if (m.session_id, m.to) == chat]
                # Learned only up to the chat's own newest send: a message accepted moments
                # before a later one may still be on its way into the store.
                own_newest = max(key.created_at for key in chats[chat])
                self._learn(chat, older, min(found.covers, own_newest))
                for key in chats[chat]:
                    if found.covers < key.created_at and not self._blocked(key, older):
                        # Truncated below this send's age and not blocking it: ask for it alone.
                        own = await self._oldest_pending([chat], key.created_at, in_hand=[key])
                        self._learn(chat, own.messages, own.covers)
                        answers[(key.message_id, key.created_at)] = self._blocked(key, own.messages)
                    else:
                        answers[(key.message_id, key.created_at)] = self._blocked(key, older)

        asked = list(chats)
        await asyncio.gather(
            *(
                some_chats(asked[i : i + CHATS_PER_QUERY])
                for i in range(0, len(asked), CHATS_PER_QUERY)
            )
        )
        return [answers[(key.message_id, key.created_at)] for key in keys]

    async def _oldest_pending(
        self, group: list[Key], before: datetime, in_hand: list[SendKey]
    ) -> _Found:
        """The oldest pending messages of these chats created before `before`, oldest first:
        their pending/{id} entries (one query, `chat in [...]`), each confirmed against its
        message (an entry whose message is finished or gone was left behind by a lost
        delete: dropped now). The sends asked about are in hand: pending, not re-read."""
        limit = PRECISE_LIMIT + 2 * len(in_hand)
        keys = [chat_key(*chat) for chat in group]
        where = Where("chat", "==", keys[0]) if len(keys) == 1 else Where("chat", "in", keys)
        entries: list[PendingSend] = await self._io(
            self._entries.query,
            [where, Where("created_at", "<", before)],
            order_by="created_at",
            limit=limit,
        )
        self.queries += 1
        # Truncated: complete only below the newest entry returned.
        covers = before if len(entries) < limit else entries[-1].created_at
        if not entries:
            return _Found([], covers)
        held = {key.message_id: key for key in in_hand}
        to_read = [e.id for e in entries if e.id not in held]
        docs = await self._io(self._messages.get_many, to_read) if to_read else []
        pending = {d.id: d for d in docs if d.status in PENDING}
        left_behind = set(to_read) - set(pending)
        if left_behind:
            await self._io(self._store.patch_many, [], [("pending", i) for i in left_behind])
        found: list[_Pending] = []
        for entry in entries:
            if entry.id in pending:
                found.append(_Pending.of(pending[entry.id]))
            elif entry.id in held:
                key = held[entry.id]
                found.append(
                    _Pending(
                        key.message_id,
                        key.session_id,
                        key.to,
                        key.created_at,
                        entry.send_at,
                        key.wa_id,
                    )
                )
        return _Found(found, covers)

    def _blocked(self, key: SendKey, older: list[_Pending]) -> bool:
        """An older message to the same chat that is due (a scheduled one does not block)."""
        return any(
            m.session_id == key.session_id
            and m.to == key.to
            and m.created_at < key.created_at
            and m.id != key.message_id
            and (m.send_at is None or m.send_at <= key.now)
            and not self._settled(m.wa_id)  # sent here; the store hears of it on replay
            for m in older
        )


PRECISE_LIMIT = 20
CHATS_PER_QUERY = 30  # Firestore's limit on the values of an `in` filter
KNOWN_FRESH_S = 10.0  # how long what this runner learned of a chat may answer "wait" alone
COMPLETE_CAPACITY = 200_000  # chats whose pending predecessors this runner can vouch for


@dataclass(frozen=True)
class _Found:
    messages: list[_Pending]  # pending, oldest first
    covers: datetime  # every pending message of the chat created before this is among them


@dataclass(frozen=True)
class _Pending:
    """A pending message, as much of it as the order check needs."""

    id: str
    session_id: str
    to: str
    created_at: datetime
    send_at: datetime | None
    wa_id: str

    @classmethod
    def of(cls, doc: MessageDoc) -> _Pending:
        return cls(doc.id, doc.session_id, doc.to, doc.created_at, doc.send_at, doc.wa_id)


@dataclass(frozen=True)
class _Known:
    created_at: datetime
    send_at: datetime | None
    wa_id: str
    seen_at: float = field(default_factory=time.monotonic)  # when this runner last learned it


@dataclass(frozen=True)
class SendKey:
    message_id: str
    session_id: str
    to: str
    created_at: datetime
    now: datetime
    wa_id: str = ""


# ---------------------------------------------------------------- status events


class MessageEvent(BaseModel):
    """One status write for an outbound message, as journaled while the store was away."""

    message_id: str | None  # None: a receipt for a message not sent here; found by wa_id
    session_id: str
    tenant_id: str
    wa_id: str
    status: MessageStatus  # sent, failed, dead (our sends) or delivered, read (receipts)
    at: datetime  # the status time (WhatsApp's ack / receipt time)
    started_at: datetime | None = None  # when the send began (an unclaimed send's `sending`)
    # False: the send went ahead without the store's claim, which would have counted the
    # attempt and set `sending`; the replay does both.
    claimed: bool = True
    error_code: str | None = None
    error_message: str | None = None
    chat: str | None = None  # a receipt's chat (for the event's Pub/Sub ordering key)


RECEIPTS = frozenset({MessageStatus.DELIVERED, MessageStatus.READ})


def apply_status_events(
    doc: MessageDoc, events: Sequence[MessageEvent], now: datetime
) -> MessageDoc:
    for event in events:
        doc = apply_status_event(doc, event, now)
    return doc


def apply_status_event(doc: MessageDoc, event: MessageEvent, now: datetime) -> MessageDoc:
    """The message after `event`, by the status machine's rules; unchanged if the event is
    stale (a receipt behind the current status, a send outcome after WhatsApp has it)."""
    current, target = doc.status, event.status
    if target in RECEIPTS:
        new = advance_by_receipt(current, target)
        if new == current:
            return doc
        times = {**doc.status_times, new.value: event.at}
        return doc.model_copy(update={"status": new, "status_times": times, "updated_at": now})
    if current in ON_WHATSAPP or current == MessageStatus.DEAD:
        return doc  # WhatsApp has it, or an operator must decide: a late outcome changes nothing
    steps = [target] if current == MessageStatus.SENDING else [MessageStatus.SENDING, target]
    status: MessageStatus = current
    for step in steps:
        if not can_transition(status, step):
            return doc
        status = step
    attempts = doc.attempts if event.claimed else doc.attempts + 1
    times = dict(doc.status_times)
    if len(steps) == 2:
        times[MessageStatus.SENDING.value] = event.started_at or event.at
    times[target.value] = event.at
    update: dict[str, Any] = {
        "status": target,
        "attempts": attempts,
        "status_times": times,
        "updated_at": now,
    }
    if event.error_code is not None:
        error = MessageError(
            at=event.at,
            code=event.error_code,
            message=event.error_message or "",
            attempt=attempts,
        )
        update["errors"] = [*doc.errors[-19:], error]
        if target == MessageStatus.DEAD:
            update["dead_reason"] = f"{event.error_code}: {event.error_message or ''}"
    return doc.model_copy(update=update)
