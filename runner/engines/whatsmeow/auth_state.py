"""Keeps a session's whatsmeow device store (a SQLite file on local disk) and the auth state the
supervisor backs up in step: the state is written into the file before the first connect, and
each change of the file is handed out once as the new state.

The engine remembers per session the digest of the state last handed out (`emitted`): if the
supervisor hands that same state back on reconnect, the file is that state or newer — keep it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from runner.engines.whatsmeow.store import DeviceStore
from wagate.logs import get_logger

log = get_logger("wagate.runner.whatsmeow")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(eq=False)
class AuthStateSync:
    """One connection's side of it; `state` is the newest auth state known (given at open, or
    captured since)."""

    store: DeviceStore
    session_id: str
    emitted: dict[str, str]  # the engine's: per session, the digest last handed out
    state: bytes | None
    _restored: bool = field(default=False, init=False)

    async def restore_once(self) -> None:
        """Before the first connect (later ones reuse the file, which is at least as new).
        Raises NotAStore for a state that is not whatsmeow's, OSError if the file cannot be
        written."""
        if self._restored:
            return
        await asyncio.to_thread(self._restore)
        self._restored = True

    def _restore(self) -> None:
        state = self.state
        if state is None:
            self.store.restore(None)  # no credentials: pair a new device
            return
        digest = _sha(state)
        if self.emitted.get(self.session_id) == digest and self.store.exists():
            return  # the file is this state or newer (this process wrote it)
        self.store.restore(state)
        self.emitted[self.session_id] = digest

    async def capture(self) -> bytes | None:
        """The store as a new auth state, if it changed since the state last handed out."""
        try:
            if not await asyncio.to_thread(self.store.changed):
                return None
            state = await asyncio.to_thread(self.store.capture)
        except Exception as e:  # a capture that fails is retried at the next poll
            log.warning("store capture failed", session_id=self.session_id, error=str(e))
            return None
        if state is None:
            return None
        digest = _sha(state)
        if self.emitted.get(self.session_id) == digest:
            return None
        self.emitted[self.session_id] = digest
        self.state = state
        return state

    def forget(self) -> None:
        """These credentials are dead (logged out, banned): never trust the file for them."""
        self.emitted.pop(self.session_id, None)
