"""Sends the runner turned away for now, remembered so that they run again as soon as they can
succeed instead of when the queue's exponential backoff says.

Cloud Tasks ignores Retry-After: a task refused ten times waits up to the queue's max backoff
(5 min) for its next attempt, even if what refused it (an older message to the same chat still
pending, a session that was reconnecting, the session's pacing) cleared a second later. Under a
backlog that turns one slow chat head into minutes of idle time for the whole chat. So when the
runner answers 503/429 for one of those reasons it parks the task's name here and wakes it with
RunTask, which dispatches at once, even while an attempt is still out:

- a message of a chat finished (sent, dead, or found done) → the oldest parked send of that chat;
- a send of a session finished, or its pacing has a token again → one parked send of the
  session (self-clocking at the send rate, never a flood);
- the session connected → a few parked sends of the session, which then keep the clock going.

Hand-written because Cloud Tasks has no "wake this task" primitive besides RunTask, and the
bookkeeping of which task waits for what only exists in this process. Only names are kept (at
most MAX_PARKED); the tasks themselves stay in Cloud Tasks, so a runner that dies loses nothing:
the tasks come back on their own backoff, and a takeover nudges them all (runner/shard.py).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from wagate.logs import get_logger

log = get_logger("wagate.runner.parking")

MAX_PARKED = 200_000
CONNECT_WAKE = 5  # sends woken when a session connects; each finished send wakes the next

ChatLot = tuple[str, str, str]  # ("chat", session_id, to)
SessionLot = tuple[str, str]  # ("session", session_id)
Lot = ChatLot | SessionLot


@dataclass(frozen=True)
class TaskRef:
    """A task as Cloud Tasks names it in the dispatch headers."""

    queue: str
    name: str


@dataclass(frozen=True)
class _Parked:
    message_id: str
    created_at: datetime
    ref: TaskRef


class _Queue:
    """Parked sends of one lot, oldest first; removal is lazy (a heap entry whose message left
    is skipped when it comes up)."""

    def __init__(self) -> None:
        self.waiting: dict[str, _Parked] = {}
        self._heap: list[tuple[datetime, str]] = []

    def push(self, parked: _Parked) -> None:
        self.waiting[parked.message_id] = parked
        heapq.heappush(self._heap, (parked.created_at, parked.message_id))
        if len(self._heap) > 2 * len(self.waiting) + 64:  # mostly left: rebuild
            self._heap = [(p.created_at, p.message_id) for p in self.waiting.values()]
            heapq.heapify(self._heap)

    def pop_oldest(self) -> _Parked | None:
        while self._heap:
            _, message_id = heapq.heappop(self._heap)
            parked = self.waiting.pop(message_id, None)
            if parked is not None:
                return parked
        return None


class Parking:
    def __init__(self, run_now: Callable[[TaskRef], Awaitable[bool]], limit: int = MAX_PARKED):
        """`run_now(ref)` dispatches the task at once: True, or False when it is gone."""
        self._run_now = run_now
        self._limit = limit
        self._lots: dict[Lot, _Queue] = {}
        self._lot_of: dict[str, Lot] = {}
        self._drips: dict[str, asyncio.TimerHandle] = {}
        self._jobs: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._lot_of)

    # ------------------------------------------------------------ parking

    def park_for_chat(
        self, message_id: str, session_id: str, to: str, created_at: datetime, ref: TaskRef
    ) -> None:
        self._park(("chat", session_id, to), _Parked(message_id, created_at, ref))

    def park_for_session(
        self, message_id: str, session_id: str, created_at: datetime, ref: TaskRef
    ) -> None:
        self._park(("session", session_id), _Parked(message_id, created_at, ref))

    def _park(self, lot: Lot, parked: _Parked) -> None:
        self.arrived(parked.message_id)
        if len(self._lot_of) >= self._limit:
            return  # full: this one waits for the queue's own retry
        self._lots.setdefault(lot, _Queue()).push(parked)
        self._lot_of[parked.message_id] = lot

    def arrived(self, message_id: str) -> None:
        """The message's task is being handled right now: it is not waiting any more."""
        lot = self._lot_of.pop(message_id, None)
        if lot is None:
            return
        queue = self._lots[lot]
        queue.waiting.pop(message_id, None)
        if not queue.waiting:
            del self._lots[lot]

    # ------------------------------------------------------------ waking

    def chat_moved(self, session_id: str, to: str) -> None:
        """A message of the chat is no longer pending: its oldest parked successor may go."""
        self._wake(("chat", session_id, to), 1)

    def session_moved(self, session_id: str, count: int = 1) -> None:
        """The session can take `count` more sends now."""
        self._wake(("session", session_id), count)

    def session_connected(self, session_id: str) -> None:
        self.session_moved(session_id, CONNECT_WAKE)

    def drip(self, session_id: str, after_s: float) -> None:
        """Wake one parked send of the session after `after_s` (its pacing's next token); one
        timer per session, the earliest wins."""
        loop = asyncio.get_running_loop()
        existing = self._drips.get(session_id)
        when = loop.time() + after_s
        if existing is not None:
            if existing.when() <= when:
                return
            existing.cancel()

        def fire() -> None:
            self._drips.pop(session_id, None)
            self.session_moved(session_id)

        self._drips[session_id] = loop.call_at(when, fire)

    def _wake(self, lot: Lot, count: int) -> None:
        queue = self._lots.get(lot)
        oldest: list[_Parked] = []
        while queue is not None and len(oldest) < count:
            parked = queue.pop_oldest()
            if parked is None:
                break
            oldest.append(parked)
            self._lot_of.pop(parked.message_id, None)
        if queue is not None and not queue.waiting:
            del self._lots[lot]
        if not oldest:
            return
        job = asyncio.get_running_loop().create_task(self._run(lot, oldest))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run(self, lot: Lot, batch: list[_Parked]) -> None:
        gone = 0
        for parked in batch:
            try:
                ran = await self._run_now(parked.ref)
            except Exception as e:  # the queue is away: the task's own retry remains
                log.warning("could not wake a parked send", task=parked.ref.name, error=str(e))
                continue
            if not ran:
                gone += 1
        if gone:
            self._wake(lot, gone)  # done meanwhile: the next one in line instead

    async def close(self) -> None:
        for handle in self._drips.values():
            handle.cancel()
        self._drips.clear()
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
