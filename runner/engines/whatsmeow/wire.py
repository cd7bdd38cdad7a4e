"""The pipe between the whatsmeow adapter (in the runner) and its host process (one per socket).

A frame is a 4-byte big-endian length and a UTF-8 JSON object. Requests carry `op` and `req`
(a number the reply echoes as `re`); events carry `ev`. wagate's typed events cross the pipe as
`{"ev": "event", "event": {...}}` through `encode_event` / `decode_event`, so both sides share one
definition of every field. Hand-written because it is 60 lines: a library (msgpack, protobuf)
would add a dependency for no behaviour we need.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

from runner.engines.directory import participants_event
from wagate.domain.events import (
    Connected,
    Disconnected,
    EngineEvent,
    GroupParticipantsChanged,
    InboundMessage,
    QrCode,
    Receipt,
)

MAX_FRAME = 64 * 1024 * 1024  # 16 MB media, base64-encoded, with room to spare
_HEADER = struct.Struct(">I")

Frame = dict[str, Any]


class FrameError(ValueError):
    """A frame that is too large or not a JSON object: the pipe is out of step."""


def pack(frame: Frame) -> bytes:
    body = json.dumps(frame, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return int(length)


def unpack(body: bytes) -> Frame:
    try:
        frame = json.loads(body)
    except ValueError as e:
        raise FrameError(f"not JSON: {e}") from e
    if not isinstance(frame, dict):
        raise FrameError("a frame must be a JSON object")
    return frame


def read_frame(stream: BinaryIO) -> Frame | None:
    """Blocking read for the host side; None at end of input."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    length = frame_length(header)
    body = stream.read(length)
    if len(body) < length:
        return None
    return unpack(body)


HEADER_SIZE = _HEADER.size


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def encode_event(event: EngineEvent) -> Frame:
    """The events the host produces (QR, connected, disconnected, inbound, receipts)."""
    match event:
        case QrCode(code=code, expires_at=expires_at):
            return {"type": "qr", "code": code, "expires_at": _ts(expires_at)}
        case Connected(jid=jid):
            return {"type": "connected", "jid": jid}
        case Disconnected(reason=reason, detail=detail):
            return {"type": "disconnected", "reason": reason, "detail": detail}
        case Receipt(wa_ids=wa_ids, kind=kind, chat=chat, ts=ts):
            return {
                "type": "receipt",
                "wa_ids": list(wa_ids),
                "kind": kind,
                "chat": chat,
                "ts": _ts(ts),
            }
        case GroupParticipantsChanged() as g:
            return {
                "type": "group_participants",
                "group": g.group,
                "action": g.action,
                "participants": list(g.participants),
                "by": g.by,
                "ts": _ts(g.ts),
            }
        case InboundMessage() as m:
            return {
                "type": "inbound",
                "wa_id": m.wa_id,
                "chat": m.chat,
                "sender": m.sender,
                "kind": m.kind,
                "content": m.content,
                "ts": _ts(m.ts),
                "from_history": m.from_history,
                "from_me": m.from_me,
            }
    raise TypeError(f"{type(event).__name__} does not cross the host pipe")


def decode_event(data: Frame) -> EngineEvent:
    kind = data.get("type")
    if kind == "qr":
        return QrCode(str(data["code"]), _dt(data["expires_at"]))
    if kind == "connected":
        return Connected(str(data["jid"]))
    if kind == "disconnected":
        return Disconnected(int(data["reason"]), str(data.get("detail", "")))
    if kind == "receipt":
        receipt_kind: Literal["delivered", "read"] = (
            "read" if data.get("kind") == "read" else "delivered"
        )
        return Receipt(
            tuple(str(i) for i in data["wa_ids"]), receipt_kind, str(data["chat"]), _dt(data["ts"])
        )
    if kind == "group_participants":
        notice = participants_event(data)
        if notice is None:
            raise FrameError(f"unknown group action {data.get('action')!r}")
        return notice
    if kind == "inbound":
        content = data.get("content")
        return InboundMessage(
            wa_id=str(data["wa_id"]),
            chat=str(data["chat"]),
            sender=str(data["sender"]),
            kind=str(data["kind"]),
            content=content if isinstance(content, dict) else {},
            ts=_dt(data["ts"]),
            from_history=bool(data.get("from_history")),
            from_me=bool(data.get("from_me")),
        )
    raise FrameError(f"unknown event type {kind!r}")
