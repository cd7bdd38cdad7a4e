"""The bounded event log behind GET /v1/events/stream (Server-Sent Events), so a client that
reconnects — after the function's request timeout, a network drop — misses nothing.

Each event of a tenant that keeps a log (TenantDoc.event_log) is written once to
events/{event id} (the id makes a repeated announcement a no-op) with `seq`, "<ms>-<event id>",
the order of the log and the SSE `id:` a client sends back as Last-Event-ID. Entries expire
after EVENT_LOG_RETENTION (Firestore TTL on expire_at): that bounds the log, and how long a
client may stay away. A reader only takes entries logged SETTLE_S ago or more, so an entry
that another writer logged a moment earlier but committed a moment later is not skipped.

Hand-written SSE framing: it is a few lines of text (the WHATWG event-stream format); the
libraries for it are ASGI-only, and the api runs on a WSGI server.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from wagate.contracts import EVENT_LOG_RETENTION, EventLogDoc, EventType, WebhookEvent
from wagate.errors import AlreadyExists, ValidationFailed, WagateError
from wagate.ports import Clock, Store, Where

SETTLE_S = 1.0
POLL_S = 1.0
KEEPALIVE_S = 15.0
PAGE = 200
SEQ = re.compile(r"\d{13}-evt_[0-9a-f]{32}")


def seq_of(at: datetime, event_id: str) -> str:
    return f"{int(at.timestamp() * 1000):013d}-{event_id}"


def parse_cursor(value: str | None, *, field: str = "Last-Event-ID") -> str | None:
    if value is None or value == "":
        return None
    if not SEQ.fullmatch(value):
        raise ValidationFailed(f"{field} must be the id of an event of this stream", field=field)
    return value


def frame(doc: EventLogDoc) -> str:
    """One SSE message: the log position as `id`, the event type, the event as JSON."""
    return f"id: {doc.seq}\nevent: {doc.type}\ndata: {doc.event.model_dump_json()}\n\n"


class EventLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._log = store.collection("events", EventLogDoc)
        self._clock = clock

    def record(self, tenant_id: str, event: WebhookEvent) -> None:
        now = self._clock.now()
        doc = EventLogDoc(
            id=event.id,
            tenant_id=tenant_id,
            session_id=event.session_id,
            type=event.type,
            seq=seq_of(now, event.id),
            event=event,
            expire_at=now + EVENT_LOG_RETENTION,
        )
        with contextlib.suppress(AlreadyExists):  # announced before: it is in the log already
            self._log.create(doc)

    def after(
        self, tenant_id: str, cursor: str, *, session_id: str | None, limit: int = PAGE
    ) -> list[EventLogDoc]:
        """Entries past `cursor`, oldest first, that have settled."""
        settled = seq_of(self._clock.now() - timedelta(seconds=SETTLE_S), "evt_")
        where = [
            Where("tenant_id", "==", tenant_id),
            Where("seq", ">", cursor),
            Where("seq", "<", settled),
        ]
        if session_id is not None:
            where.insert(1, Where("session_id", "==", session_id))
        return self._log.query(where, order_by="seq", limit=limit)

    def start(self) -> str:
        """The cursor of a client that has seen nothing: from now on."""
        return seq_of(self._clock.now() - timedelta(seconds=SETTLE_S), "evt_")

    def stream(
        self,
        tenant_id: str,
        cursor: str | None,
        *,
        session_id: str | None,
        types: set[EventType] | None,
        hold_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[str]:
        """The SSE body: settled entries past `cursor` as they come, for `hold_s` seconds;
        then it ends and the client resumes from the last id it got."""
        position = cursor or self.start()
        deadline = time.monotonic() + hold_s
        quiet_since = time.monotonic()
        yield f"retry: {int(POLL_S * 1000)}\n: stream open, resume with Last-Event-ID\n\n"
        while True:
            try:
                docs = self.after(tenant_id, position, session_id=session_id)
            except WagateError as e:
                yield f"event: error\ndata: {json.dumps({'message': e.message})}\n\n"
                return
            for doc in docs:
                position = doc.seq
                if types is None or doc.type in types:
                    quiet_since = time.monotonic()
                    yield frame(doc)
            now = time.monotonic()
            if now >= deadline:
                # The position of a client whose filter skipped everything moves on too.
                yield f"id: {position}\n: held {hold_s:g} s, reconnect to go on\n\n"
                return
            if len(docs) < PAGE:
                if now - quiet_since >= KEEPALIVE_S:
                    quiet_since = now
                    yield ": keep-alive\n\n"
                sleep(min(POLL_S, max(0.0, deadline - now)))
