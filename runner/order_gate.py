"""The chat-order check: a send waits while an older, due message to its chat is pending."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from runner.batching import MicroBatcher
from runner.io import Offload
from runner.sent_index import SentIndex
from wagate.contracts import MessageDoc, PendingSend
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import ON_WHATSAPP, PENDING, chat_key, chat_of
from wagate.ports import Store, Where

Key = tuple[str, str]


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
        # The sends of a window share one query per 30 chats; a send whose caller gave up
        # waiting (the store was too slow) is not asked about.
        self._batcher: MicroBatcher[SendKey, bool] = MicroBatcher(
            self._answer, window_s=window_s, skip_abandoned=True
        )
        self._known: dict[Key, dict[str, _Known]] = {}
        self._covered: OrderedDict[Key, _Covered] = OrderedDict()
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
            and key.created_at <= covered.below
            and time.monotonic() - covered.at <= KNOWN_FRESH_S
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
        return await self._batcher.submit(key)

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
        return entry is not None and entry.status in ON_WHATSAPP

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
        self._covered[chat] = _Covered(covers, now)
        self._covered.move_to_end(chat)
        while self._covered and now - next(iter(self._covered.values())).at > KNOWN_FRESH_S:
            self._covered.popitem(last=False)
        for m in older:
            if not self._settled(m.wa_id):
                known[m.id] = _Known(m.created_at, m.send_at, m.wa_id)
        if known:
            self._known[chat] = known
        else:
            self._known.pop(chat, None)

    # ------------------------------------------------------------ the store

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
class _Covered:
    """A chat's last query returned every pending message created before `below`, at `at`
    (time.monotonic)."""

    below: datetime
    at: float


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
