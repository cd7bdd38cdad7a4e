"""The index of messages this runner sent: receipts find their message without a query."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import NamedTuple

from wagate.domain.messages import MessageStatus


class SentEntry(NamedTuple):
    """A message sent here. A named tuple, not a dataclass, while runner/sending.py and
    runner/inbound.py still read it by position (known[0], known[1])."""

    message_id: str
    status: MessageStatus  # the last status this runner wrote


class SentIndex:
    """WhatsApp id → SentEntry (message id, last status this runner wrote), for messages sent
    here.

    Receipts name messages by WhatsApp id; this spares a query per receipt. Sends in flight are
    registered so a receipt that overtakes the `sent` write waits for it (statuses only move
    forward). Bounded LRU; a miss falls back to a query.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._entries: OrderedDict[str, SentEntry] = OrderedDict()
        self._capacity = capacity
        self._inflight: dict[str, asyncio.Event] = {}

    def get(self, wa_id: str) -> SentEntry | None:
        entry = self._entries.get(wa_id)
        if entry is not None:
            self._entries.move_to_end(wa_id)
        return entry

    def put(self, wa_id: str, message_id: str, status: MessageStatus) -> None:
        self._entries[wa_id] = SentEntry(message_id, status)
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
