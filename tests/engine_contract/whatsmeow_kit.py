"""What the whatsmeow adapter's offline tests share.

- `linked_store(path)`: a real whatsmeow device store — the schema is created by the library
  itself (neonize's Go core, through GetAllDevices), then one device row with random keys of the
  right sizes is added, as a pairing would. whatsmeow loads it as a logged-in device (it only
  fails later, at the network), so restore and capture are tested on the library's real format.
- `UNREACHABLE_PROXY`: a proxy URL on a closed loopback port, so the real library is refused at
  once even on a machine that can reach WhatsApp.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

ME_DIGITS = "15550500001"
DEVICE_JID = f"{ME_DIGITS}:7@s.whatsapp.net"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


UNREACHABLE_PROXY = f"socks5://127.0.0.1:{_closed_port()}"


def blank_store(path: Path) -> Path:
    """An empty whatsmeow store, its tables created by the library."""
    from neonize.client import ClientFactory

    path.parent.mkdir(parents=True, exist_ok=True)
    assert ClientFactory.get_all_devices_from_db(str(path)) == []
    return path


def linked_store(path: Path, jid: str = DEVICE_JID) -> bytes:
    """A whatsmeow store holding one linked device; returns its bytes."""
    blank_store(path)
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, "
            "signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, "
            "adv_account_sig, adv_account_sig_key, adv_device_sig, platform, push_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                jid,
                4242,
                os.urandom(32),
                os.urandom(32),
                os.urandom(32),
                1,
                os.urandom(64),
                os.urandom(32),
                os.urandom(48),
                os.urandom(64),
                os.urandom(32),
                os.urandom(64),
                "wagate-test",
                "wagate",
            ),
        )
        conn.commit()
    finally:
        conn.close()
    return path.read_bytes()
