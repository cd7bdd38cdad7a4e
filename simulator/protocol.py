"""Names and small pure helpers of the simulator's wire protocol (described in PROTOCOL.md).

The gateway's engine adapter (runner/engines/simulated/) re-declares what it needs instead of
importing this module: the simulator and the runner are separate programs (import-linter).
"""

from __future__ import annotations

import json
import re
from typing import Any

PROTOCOL_VERSION = 1
WS_PATH = "/ws"

# A disconnect reason R travels as websocket close code 4000 + R (codes below 3000 are reserved
# by RFC 6455, so WhatsApp's 401/440/515 cannot be sent as they are).
CLOSE_CODE_BASE = 4000
GOING_AWAY = 1001  # the simulator shuts down or was reset

REASONS = frozenset({401, 403, 408, 411, 428, 440, 500, 503, 515})

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
LID_BASE = 100_000_000_000_000  # a number's LID is LID_BASE + 7 x its digits (so are the fake's)

_PHONE = re.compile(r"^\+?([1-9][0-9]{6,15})$")
_USER_JID = re.compile(r"^([1-9][0-9]{6,15})(?::[0-9]+)?@s\.whatsapp\.net$")
_GROUP_JID = re.compile(r"^[0-9]{6,20}(?:-[0-9]{6,12})?@g\.us$")
_LID_JID = re.compile(r"^([0-9]{6,20})(?::[0-9]+)?@lid$")


def close_code(reason: int) -> int:
    return CLOSE_CODE_BASE + reason


def normalize_address(raw: str) -> str | None:
    """The canonical key of a recipient: the bare digits of a phone number (from `+1555…`,
    `1555…`, `1555…@s.whatsapp.net`, a device jid `1555…:3@s.whatsapp.net`, or the number's
    LID `…@lid`), or a group jid as it is. None when `raw` is none of these."""
    value = raw.strip()
    match = _PHONE.match(value) or _USER_JID.match(value)
    if match:
        return match.group(1)
    if _GROUP_JID.match(value):
        return value
    lid = _LID_JID.match(value)
    if lid:
        return phone_of_lid(lid.group(1))
    return None


def lid_jid(phone: str) -> str:
    """The LID address of a phone number's account (WhatsApp's privacy-preserving user id)."""
    return f"{LID_BASE + int(phone) * 7}@{LID_SERVER}"


def phone_of_lid(user: str) -> str | None:
    """The phone number whose LID is `user`, or None when no number has that LID."""
    offset = int(user) - LID_BASE
    if offset <= 0 or offset % 7:
        return None
    digits = str(offset // 7)
    return digits if _PHONE.match(digits) else None


def user_jid(phone: str) -> str:
    """The chat jid of a canonical address (a group jid stays as it is)."""
    return phone if "@" in phone else f"{phone}@{USER_SERVER}"


def device_jid(phone: str, device: int) -> str:
    return f"{phone}:{device}@{USER_SERVER}"


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))
