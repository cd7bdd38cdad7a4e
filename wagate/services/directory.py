"""Which tenant owns a session, and on which shard it lives.

Both facts never change after creation, so they are cached in-process: the api's hot path
(accepting a message) pays no extra Firestore read for them. A session of another tenant is
NotFound, never Forbidden (no existence leaks).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from wagate.contracts import SessionDoc
from wagate.domain import ids
from wagate.errors import NotFound
from wagate.ports import Store

CACHE_SIZE = 50_000


class SessionDirectory:
    def __init__(self, store: Store) -> None:
        self._sessions = store.collection("sessions", SessionDoc)
        self._cache: OrderedDict[str, SessionDoc] = OrderedDict()
        self._lock = threading.Lock()

    def owned(self, tenant_id: str, session_id: str) -> SessionDoc:
        """The session (possibly a cached copy: tenant and shard are immutable)."""
        with self._lock:
            cached = self._cache.get(session_id)
            if cached is not None:
                self._cache.move_to_end(session_id)
        doc = cached or (self._sessions.get(session_id) if ids.is_valid_id(session_id) else None)
        if doc is None or doc.tenant_id != tenant_id:
            raise NotFound(f"session {session_id} not found", field="session_id")
        if cached is None:
            with self._lock:
                self._cache[session_id] = doc
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return doc

    def fresh(self, tenant_id: str, session_id: str) -> SessionDoc:
        """The current document (state, QR …), read now."""
        doc = self._sessions.get(session_id) if ids.is_valid_id(session_id) else None
        if doc is None or doc.tenant_id != tenant_id:
            raise NotFound(f"session {session_id} not found", field="session_id")
        return doc

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._cache.pop(session_id, None)
