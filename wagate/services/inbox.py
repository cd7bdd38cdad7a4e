"""Received messages of a session (sessions/{id}/inbound), newest first, cursor-paged."""

from __future__ import annotations

from wagate.contracts import InboundDoc
from wagate.ports import Store
from wagate.services.directory import SessionDirectory


class Inbox:
    def __init__(self, store: Store, directory: SessionDirectory) -> None:
        self._store = store
        self._directory = directory

    def list(
        self, tenant_id: str, session_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[InboundDoc], str | None]:
        self._directory.owned(tenant_id, session_id)
        repo = self._store.subcollection("sessions", session_id, "inbound", InboundDoc)
        docs = repo.query(order_by="ts", descending=True, limit=limit + 1, start_after=cursor)
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1].id if more and docs else None)
