"""Lets a send wait, in process, for older messages to the same chat to finish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable


class ChatOrder:
    """All tasks of a shard reach the same runner, so a predecessor that is pending is normally
    being handled right here; waiting for it (instead of answering 503 and letting the queue's
    exponential backoff decide) keeps a burst to one chat flowing at the send rate.
    """

    def __init__(self) -> None:
        self._changed: dict[tuple[str, str], asyncio.Condition] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    @contextlib.asynccontextmanager
    async def watching(self, session_id: str, to: str) -> AsyncIterator[asyncio.Condition]:
        key = (session_id, to)
        cond = self._changed.setdefault(key, asyncio.Condition())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            yield cond
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] == 0:  # nobody waits on this chat: forget it
                del self._waiting[key]
                self._changed.pop(key, None)

    async def finished(self, session_id: str, to: str) -> None:
        cond = self._changed.get((session_id, to))
        if cond is not None:
            async with cond:
                cond.notify_all()

    async def wait_until_clear(
        self, session_id: str, to: str, blocked: Callable[[], Awaitable[bool]], timeout_s: float
    ) -> bool:
        """True once `blocked()` says no older message holds the chat; False after
        `timeout_s`. Woken by `finished`, and re-checked every 2 s for predecessors handled
        elsewhere."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with self.watching(session_id, to) as cond, cond:
            # The check runs under the condition's lock, so a predecessor finishing meanwhile
            # cannot notify before we wait: no wake-up is lost.
            while await blocked():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cond.wait(), min(remaining, 2.0))
        return True
