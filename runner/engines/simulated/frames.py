"""The simulator protocol's frames (simulator/PROTOCOL.md) → wagate's events and send errors,
as pure functions over the decoded JSON. Re-declared here rather than imported from the
simulator package: the simulator and the runner are separate programs (import-linter)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from wagate.domain.chat_actions import ChatAction, EditText, MarkRead, Revoke, SetPresence
from wagate.domain.events import InboundMedia, InboundMessage, MediaFetch, Receipt
from wagate.errors import PermanentSendError, TransientSendError

CLOSE_CODE_BASE = 4000  # a close code 4000 + N carries wagate's reason N
CLOSED = 428  # a plain network close


def timestamp(value: Any) -> datetime:
    """A frame's `ts` (Unix seconds); now if it has none."""
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


def close_reason(code: int | None, detail: str) -> tuple[int, str]:
    """The reason of a socket the server closed: 4000+N → N; any other close → 428."""
    if code is not None and CLOSE_CODE_BASE < code < CLOSE_CODE_BASE + 1000:
        return code - CLOSE_CODE_BASE, detail
    return CLOSED, detail or "connection closed"


def receipt(frame: dict[str, Any]) -> Receipt:
    kind: Literal["delivered", "read"] = "read" if frame.get("kind") == "read" else "delivered"
    ids = tuple(str(i) for i in frame.get("ids", ()))
    return Receipt(ids, kind, str(frame.get("chat", "")), timestamp(frame.get("ts")))


MediaFetcher = Callable[[str], MediaFetch]  # the media host's path of a file → its download


def inbound_media(frame: dict[str, Any], fetcher: MediaFetcher) -> InboundMedia | None:
    """A message frame's file (`media`: path on the simulator's media host, type, size)."""
    media = frame.get("media")
    if not isinstance(media, dict) or not isinstance(media.get("path"), str):
        return None
    size = media.get("size")
    return InboundMedia(
        mime_type=str(media.get("mime_type") or "application/octet-stream"),
        fetch=fetcher(media["path"]),
        size=size if isinstance(size, int) else None,
        filename=_address(media.get("filename")),
    )


def inbound_message(
    frame: dict[str, Any], *, from_history: bool, fetcher: MediaFetcher | None = None
) -> InboundMessage:
    content = frame.get("content")
    return InboundMessage(
        wa_id=str(frame.get("id", "")),
        chat=str(frame.get("chat", "")),
        sender=str(frame.get("sender", "")),
        kind=str(frame.get("kind", "text")),
        content=content if isinstance(content, dict) else {},
        ts=timestamp(frame.get("ts")),
        from_history=from_history,
        from_me=bool(frame.get("from_me", False)),
        sender_phone=_address(frame.get("sender_phone")),
        sender_lid=_address(frame.get("sender_lid")),
        media=inbound_media(frame, fetcher) if fetcher else None,
    )


def _address(value: Any) -> str | None:
    return str(value) if value else None


def nack_error(frame: dict[str, Any]) -> PermanentSendError | TransientSendError:
    """The server refused a send: permanent (the recipient, the content) or worth a retry."""
    code = str(frame.get("code", "error"))
    message = f"{code}: {frame.get('message', '')}"
    details = [{"reason": code}]
    if frame.get("permanent"):
        return PermanentSendError(message, field="to", details=details)
    retry_after = frame.get("retry_after")
    return TransientSendError(
        message,
        details=details,
        retry_after=float(retry_after) if retry_after is not None else None,
    )


def action(wa_id: str, to: str, act: ChatAction) -> dict[str, Any]:
    """A chat action as the simulator's frame: an edit or revoke is a message of its own kind
    naming its target; a read receipt and a presence are `read` and `presence` frames."""
    if isinstance(act, EditText):
        content: dict[str, Any] = {"message_id": act.target_wa_id, "body": act.text}
        return {"t": "send", "id": wa_id, "to": to, "kind": "edit", "content": content}
    if isinstance(act, Revoke):
        content = {"message_id": act.target_wa_id}
        return {"t": "send", "id": wa_id, "to": to, "kind": "revoke", "content": content}
    if isinstance(act, MarkRead):
        return {"t": "read", "id": wa_id, "to": act.chat, "ids": list(act.wa_ids)}
    assert isinstance(act, SetPresence)
    return {"t": "presence", "id": wa_id, "to": to, "state": act.state}
