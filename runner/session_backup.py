"""A session's auth-state backup (SPEC §4): restored once before the first connect, written
debounced after every change the engine hands over and periodically, re-sealed after a key
rotation. Owned by the session's supervisor (runner/supervisor.py), which only it writes for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from runner.context import ShardContext
from wagate.contracts import BackupInfo, SessionDoc
from wagate.errors import StaleGeneration, WagateError
from wagate.logs import get_logger
from wagate.services.backups import BackupCorrupt
from wagate.services.monitoring import BACKUP_FAILURES, BACKUP_SECONDS

log = get_logger("wagate.runner.session")

SessionWrite = Callable[..., Awaitable[bool]]


class SessionBackup:
    def __init__(self, doc: SessionDoc, ctx: ShardContext, write: SessionWrite) -> None:
        self.tenant_id = doc.tenant_id
        self.session_id = doc.id
        self._ctx = ctx
        self._write = write  # the supervisor's fenced write of the session document
        self.restored = False
        # The newest credentials the engine handed over (the backup may lag by the debounce).
        self.auth_state: bytes | None = None
        self._generation: int | None = None
        self._key_id: str | None = None  # the key the live backup is sealed with
        self._pending: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.last_backup_at: datetime | None = None
        self.restored_backup_at = doc.last_backup.at if doc.last_backup else None  # for /health
        self.keys_changed_at = doc.keys_changed_at
        self.failures = 0

    async def restore(self) -> int | None:
        """Read the backup once; a reason code (503) when the store failed, None otherwise."""
        ctx = self._ctx
        try:
            restored = await ctx.io(ctx.backups.restore, self.tenant_id, self.session_id)
        except BackupCorrupt as e:
            restored = None
            await ctx.io(
                ctx.alerts.raise_alert,
                "backup_corrupt",
                self.session_id,
                f"no backup version authenticates: {e.message}; a new QR scan is needed",
                "critical",
            )
        except WagateError as e:
            log.warning("backup restore failed", session_id=self.session_id, error=e.message)
            return 503
        self.restored = True
        if restored is None:
            self._generation = 0
            return None
        self.auth_state = restored.state
        self._generation = restored.generation
        self._key_id = restored.key_id
        if restored.fell_back:
            await ctx.io(
                ctx.alerts.raise_alert,
                "backup_corrupt",
                self.session_id,
                f"newest backup refused; restored an older one ({restored.refused})",
                "warning",
            )
        return None

    def changed(self, state: bytes) -> None:
        """The engine handed over new credentials: back them up (at once the first time)."""
        self.keys_changed_at = self._ctx.clock.now()  # key material age (maintenance)
        self.auth_state = state
        self._pending = state
        first = self._generation in (0, None) and self.last_backup_at is None
        self._schedule(0.0 if first else self._ctx.settings.backup_debounce_s)

    def forget(self) -> None:
        """Logged out: the credentials are worthless, nothing is left to back up."""
        self.auth_state = None
        self._pending = None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _schedule(self, delay: float) -> None:
        if self._task is not None and not self._task.done():
            return  # a backup is already scheduled; it will take the newest state
        self._task = asyncio.create_task(self._after(delay))

    async def _after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> bool:
        async with self._lock:
            state = self._pending
            if state is None:
                return True
            ctx = self._ctx
            keys_changed_at = self.keys_changed_at
            started = time.perf_counter()
            try:
                saved = await ctx.io(
                    ctx.backups.save,
                    self.tenant_id,
                    self.session_id,
                    state,
                    expected_generation=self._generation,
                )
            except StaleGeneration:
                # Someone else wrote this session's backup: we are not its owner any more.
                BACKUP_FAILURES.labels("conflict").inc()
                self.failures += 1
                await ctx.io(
                    ctx.alerts.raise_alert,
                    "backup_conflict",
                    self.session_id,
                    "another writer updated this backup",
                    "critical",
                )
                return False
            except WagateError as e:
                BACKUP_FAILURES.labels("error").inc()
                self.failures += 1
                log.warning("backup failed", session_id=self.session_id, error=e.message)
                if self.failures >= 3:
                    await ctx.io(
                        ctx.alerts.raise_alert,
                        "backup_failing",
                        self.session_id,
                        f"{self.failures} backups in a row failed: {e.message}",
                    )
                self._schedule(min(60.0, 2.0 * self.failures))
                return False
            BACKUP_SECONDS.observe(time.perf_counter() - started)
            if self._pending is state:
                self._pending = None
            if saved.generation:
                self._generation = saved.generation
            self._key_id = saved.key_id
            self.failures = 0
            self.last_backup_at = ctx.clock.now()
            await self._write(
                last_backup=BackupInfo(
                    generation=saved.generation,
                    key_id=saved.key_id,
                    sha256=saved.sha256,
                    at=self.last_backup_at,
                ),
                keys_changed_at=keys_changed_at,
            )
            return True

    async def periodic(self) -> None:
        rotated = self._key_id not in (None, self._ctx.backups.current_key_id)
        if self._pending is None and rotated and self.auth_state is not None:
            # The key ring rotated: re-seal the live backup with the new key. The runner owns
            # this session's backup, so it finishes what `wagate keys rotate` must skip.
            self._pending = self.auth_state
        if self._pending is not None:
            await self.flush()
