"""Documents for tests, with the fields a test does not care about filled in."""

from __future__ import annotations

from typing import Any

from wagate.contracts import MessageDoc, TextContent
from wagate.domain.ids import whatsapp_message_id


def text_message(mid: str, **fields: Any) -> MessageDoc:
    """A text message of ten_1/ses_1 on shard 0; `fields` set whatever the test is about."""
    values: dict[str, Any] = {
        "id": mid,
        "tenant_id": "ten_1",
        "session_id": "ses_1",
        "shard": 0,
        "to": "+15550001111",
        "content": TextContent(body="hello"),
        "wa_id": whatsapp_message_id(mid),
    }
    return MessageDoc(**{**values, **fields})
