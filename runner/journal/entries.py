"""The journal's file: an ordered, crash-safe append log of entries (kind, key, JSON body)
with keyed deletes, and entries parked for an operator when they cannot be applied.

Storage is SQLite from the standard library (WAL, synchronous=FULL: every append is fsync'd
before it returns): an ordered, crash-safe append log with keyed deletes needs no more, and a
queue library (persist-queue and the like) would add a dependency for less. The table is
hand-written; the durability is SQLite's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

JOURNAL_FILE = "journal.sqlite3"


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    key: str
    body: str
    at: float


class Journal:
    """The append-only table. Thread-safe: the event loop uses it through one dedicated thread
    (so an fsync never blocks the sockets), worker threads may append directly."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL,"
            " body TEXT NOT NULL, at REAL NOT NULL, parked TEXT)"
        )
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)  # message bodies and numbers: readable by the runner only
        self._backlog = self._count("parked IS NULL")
        self._parked = self._count("parked IS NOT NULL")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    def _count(self, where: str) -> int:
        row = self._db.execute(f"SELECT COUNT(*) FROM entries WHERE {where}").fetchone()  # noqa: S608 (constant)
        return int(row[0])

    @property
    def backlog(self) -> int:
        """Entries waiting to be replayed."""
        return self._backlog

    @property
    def parked(self) -> int:
        """Entries that could not be applied (not an outage); kept for an operator."""
        return self._parked

    # ------------------------------------------------------------ blocking API

    def append_now(self, kind: str, key: str, body: str) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO entries (kind, key, body, at) VALUES (?, ?, ?, ?)",
                (kind, key, body, time.time()),
            )
            self._backlog += 1
            return int(cursor.lastrowid or 0)

    def oldest(self, limit: int) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, key, body, at FROM entries WHERE parked IS NULL"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def entries(self, kind: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, key, body, at FROM entries WHERE parked IS NULL AND kind = ?"
                " ORDER BY seq",
                (kind,),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            cursor = self._db.executemany(
                "DELETE FROM entries WHERE seq = ? AND parked IS NULL", [(s,) for s in seqs]
            )
            self._db.execute("COMMIT")
            self._backlog -= cursor.rowcount

    def park(self, seqs: Sequence[int], reason: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            cursor = self._db.executemany(
                "UPDATE entries SET parked = ? WHERE seq = ? AND parked IS NULL",
                [(reason, s) for s in seqs],
            )
            self._db.execute("COMMIT")
            self._backlog -= cursor.rowcount
            self._parked += cursor.rowcount

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ asyncio API

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def append(self, kind: str, key: str, body: str) -> int:
        return await self._run(self.append_now, kind, key, body)

    async def oldest_async(self, limit: int) -> list[Entry]:
        return await self._run(self.oldest, limit)

    async def remove_async(self, seqs: Sequence[int]) -> None:
        await self._run(self.remove, seqs)

    async def park_async(self, seqs: Sequence[int], reason: str) -> None:
        await self._run(self.park, seqs, reason)
