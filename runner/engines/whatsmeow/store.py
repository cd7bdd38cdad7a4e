"""One session's whatsmeow device store: a SQLite file on the runner's local disk.

The file is whatsmeow's whole auth state (identity and signal keys, pre-keys, sessions, app-state
keys), so wagate treats its bytes as the opaque auth state that goes through the encrypted
backups (wagate.services.backups). Three operations matter:

- `restore(state)` writes backed-up bytes to disk before the library opens the file, after
  checking they are a whatsmeow store that still holds a device (anything else is refused, and
  the adapter reports 401: the credentials are gone).
- `capture()` reads the file consistently while whatsmeow may be writing it: SQLite's
  `serialize()` reads every page inside one read transaction, and for a file in rollback-journal
  mode (whatsmeow's default) its output is the file byte for byte, so capture → restore →
  capture gives identical bytes.
- `changed()` asks SQLite whether another connection (whatsmeow's) committed since the last
  call (`PRAGMA data_version`), which costs a few microseconds, so the adapter can poll it.

The store also holds wagate's own small table, `wagate_sent_ids`, mapping the ids wagate chose
to the ids whatsmeow generated (neonize cannot send with a caller-chosen id; see docs/engines.md).
It lives in the same file so it travels inside the same encrypted backup.

All methods block (disk I/O); the adapter calls them from a worker thread, one at a time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"
_LEDGER = """
CREATE TABLE IF NOT EXISTS wagate_sent_ids (
    wa_id TEXT PRIMARY KEY,
    whatsapp_id TEXT NOT NULL,
    server_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS wagate_sent_ids_whatsapp_id ON wagate_sent_ids (whatsapp_id);
"""


class NotAStore(ValueError):
    """Bytes that are not a whatsmeow device store holding a device."""


def _device_count(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM whatsmeow_device").fetchone()
    return int(row[0]) if row else 0


def check_state(state: bytes, scratch: Path) -> None:
    """Raise NotAStore unless `state` is a SQLite database with a whatsmeow device in it."""
    if not state.startswith(SQLITE_MAGIC):
        raise NotAStore("the stored auth state is not a whatsmeow SQLite store")
    scratch.write_bytes(state)
    try:
        conn = sqlite3.connect(f"file:{scratch}?mode=ro", uri=True)
        try:
            if _device_count(conn) == 0:
                raise NotAStore("the stored auth state holds no linked device")
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise NotAStore(f"the stored auth state is not a readable whatsmeow store: {e}") from e
    finally:
        scratch.unlink(missing_ok=True)


class DeviceStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._dirty = True  # the first poll always captures
        self._version: object = None
        self._shut = False  # close() was called: no connection may be reopened until restore()

    # ------------------------------------------------------------ lifecycle

    def prepare_dir(self) -> None:
        # The store holds plaintext keys: only the runner's user may read it.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def restore(self, state: bytes | None) -> None:
        """Put `state` on disk (None: start a blank store, i.e. pair a new device)."""
        with self._lock:
            self._close()
            self._shut = False
            self.prepare_dir()
            if state is None:
                self._unlink()
                return
            tmp = self.path.with_name(self.path.name + ".restore")
            check_state(state, tmp.with_name(tmp.name + ".check"))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(state)
                f.flush()
                os.fsync(f.fileno())
            self._unlink_journals()
            os.replace(tmp, self.path)  # atomic: never a half-written store
            self._dirty = True

    def exists(self) -> bool:
        return self.path.exists()

    def wipe(self) -> None:
        with self._lock:
            self._close()
            self._unlink()

    def close(self) -> None:
        with self._lock:
            self._close()
            self._shut = True

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _unlink(self) -> None:
        self.path.unlink(missing_ok=True)
        self._unlink_journals()

    def _unlink_journals(self) -> None:
        for suffix in ("-journal", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def _db(self) -> sqlite3.Connection:
        if self._shut:
            raise sqlite3.ProgrammingError("the device store was closed")
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    # ------------------------------------------------------------ capture

    def changed(self) -> bool:
        """True if the store may differ from the last capture (whatsmeow or we wrote it)."""
        with self._lock:
            if not self.path.exists():
                return False
            try:
                version = self._db().execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return False
            changed = self._dirty or version != self._version
            self._version = version
            self._dirty = False
            return changed

    def capture(self) -> bytes | None:
        """The store's bytes, or None if it holds no device (not paired yet, or logged out:
        whatsmeow deletes the device then, and such a state must never replace a backup)."""
        with self._lock:
            if not self.path.exists():
                return None
            conn = self._db()
            try:
                conn.execute("BEGIN")
                try:
                    if _device_count(conn) == 0:
                        return None
                    return conn.serialize()
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error:
                return None  # whatsmeow has not created its tables yet

    # ------------------------------------------------------------ sent-id ledger

    def record_sent(self, wa_id: str, whatsapp_id: str, server_ts: datetime) -> None:
        with self._lock:
            conn = self._db()
            conn.executescript(_LEDGER)
            conn.execute(
                "INSERT OR REPLACE INTO wagate_sent_ids VALUES (?, ?, ?)",
                (wa_id, whatsapp_id, server_ts.timestamp()),
            )
            conn.commit()
            self._dirty = True

    def sent(self, wa_id: str) -> tuple[str, datetime] | None:
        with self._lock:
            try:
                row = (
                    self._db()
                    .execute(
                        "SELECT whatsapp_id, server_ts FROM wagate_sent_ids WHERE wa_id = ?",
                        (wa_id,),
                    )
                    .fetchone()
                )
            except sqlite3.OperationalError:
                return None  # no ledger yet: nothing sent from this store
            if row is None:
                return None
            return str(row[0]), datetime.fromtimestamp(float(row[1]), UTC)

    def wagate_ids(self, whatsapp_ids: tuple[str, ...]) -> tuple[str, ...]:
        """The wagate ids of these WhatsApp ids; unknown ids (sent from the phone) unchanged."""
        with self._lock:
            found: list[str] = []
            for whatsapp_id in whatsapp_ids:
                try:
                    row = (
                        self._db()
                        .execute(
                            "SELECT wa_id FROM wagate_sent_ids WHERE whatsapp_id = ?",
                            (whatsapp_id,),
                        )
                        .fetchone()
                    )
                except sqlite3.OperationalError:
                    row = None  # no ledger yet
                found.append(str(row[0]) if row else whatsapp_id)
            return tuple(found)

    def is_ours(self, whatsapp_or_wa_id: str) -> str | None:
        """The WhatsApp id of a message this device sent (by either id), for reactions."""
        with self._lock:
            try:
                row = (
                    self._db()
                    .execute(
                        "SELECT whatsapp_id FROM wagate_sent_ids WHERE wa_id = ? "
                        "OR whatsapp_id = ?",
                        (whatsapp_or_wa_id, whatsapp_or_wa_id),
                    )
                    .fetchone()
                )
            except sqlite3.OperationalError:
                return None
            return str(row[0]) if row else None
