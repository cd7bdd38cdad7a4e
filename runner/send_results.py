"""What a send task's handling came to (runner/sending.py), and the one table that turns it
into the HTTP answer Cloud Tasks acts on: 2xx stops the task, 429/503 retry after a while."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wagate.domain.messages import MessageStatus


class SendOutcome(StrEnum):
    NOT_SERVING = "not_serving"  # draining, or not the lease holder
    SESSION_ELSEWHERE = "session_elsewhere"  # the session is not on this runner
    SESSION_DOWN = "session_down"  # on this runner, not connected
    STORE_UNAVAILABLE = "store_unavailable"  # the store did not answer (and no snapshot may do)
    UNKNOWN_MESSAGE = "unknown_message"  # no such message, nor will there be
    NOT_WRITTEN_YET = "not_written_yet"  # the api's write may still be in flight
    DEDUPLICATED = "deduplicated"  # sent (or dead) already: not sent again
    EARLIER_PENDING = "earlier_pending"  # an older message to the chat has not gone yet
    PACED = "paced"  # the session's token bucket is empty
    INTERRUPTED = "interrupted"  # the send raised something unexpected
    FAILED = "failed"  # a transient send error, attempts left
    DEAD = "dead"  # a permanent error, or the last attempt
    NOT_RECORDED = "not_recorded"  # WhatsApp has it, neither store nor journal took it
    SENT = "sent"
    SENT_JOURNALED = "sent_journaled"  # sent; recorded in the local journal, not the store yet


# outcome → (HTTP status, default Retry-After in seconds)
HTTP: dict[SendOutcome, tuple[int, float | None]] = {
    SendOutcome.NOT_SERVING: (503, 5),
    SendOutcome.SESSION_ELSEWHERE: (503, 10),
    SendOutcome.SESSION_DOWN: (503, 5),
    SendOutcome.STORE_UNAVAILABLE: (503, 5),
    SendOutcome.UNKNOWN_MESSAGE: (200, None),
    SendOutcome.NOT_WRITTEN_YET: (503, 1),
    SendOutcome.DEDUPLICATED: (200, None),
    SendOutcome.EARLIER_PENDING: (503, 2),
    SendOutcome.PACED: (429, None),
    SendOutcome.INTERRUPTED: (503, 5),
    SendOutcome.FAILED: (503, 5),
    SendOutcome.DEAD: (200, None),
    SendOutcome.NOT_RECORDED: (503, 5),
    SendOutcome.SENT: (200, None),
    SendOutcome.SENT_JOURNALED: (200, None),
}


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    reason: str | None = None
    message_status: MessageStatus | None = None  # DEDUPLICATED: the status it was found in
    wa_id: str | None = None  # SENT, SENT_JOURNALED
    wait_s: float | None = None  # overrides the table's Retry-After

    @property
    def status(self) -> int:
        """The HTTP status (HTTP table)."""
        return HTTP[self.outcome][0]

    @property
    def retry_after(self) -> float | None:
        return self.wait_s if self.wait_s is not None else HTTP[self.outcome][1]

    @property
    def body(self) -> dict[str, object]:
        """The JSON answer, as the queue and the operators have always read it."""
        o = SendOutcome
        if self.outcome == o.UNKNOWN_MESSAGE:
            return {"status": "unknown_message"}
        if self.outcome == o.DEDUPLICATED:
            assert self.message_status is not None
            return {"status": self.message_status.value, "deduplicated": True}
        if self.outcome in (o.FAILED, o.DEAD):
            return {"status": self.outcome.value, "reason": self.reason}
        if self.outcome == o.NOT_RECORDED:
            return {"status": "sent", "reason": "could not record yet"}
        if self.outcome == o.SENT:
            return {"status": "sent", "wa_id": self.wa_id}
        if self.outcome == o.SENT_JOURNALED:
            return {"status": "sent", "wa_id": self.wa_id, "recorded": "journal"}
        return {"reason": self.reason}
