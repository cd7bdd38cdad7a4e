"""What every part of a shard's runner shares: ports, settings, the fence of the current lease."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from pathlib import Path

from runner.inbound_media import InboundMediaStore
from runner.io import Offload
from runner.journal import JOURNAL_FILE, DurableWrites, Journal
from wagate.config import Settings
from wagate.contracts import MessageDoc, PendingSend, SessionDoc, TenantDoc
from wagate.domain.backoff import Backoff
from wagate.ports import Clock, Fence, Repository, Store, TaskQueue, WhatsAppEngine
from wagate.services.alerts import Alerts
from wagate.services.backups import SessionBackups


@dataclass
class ShardContext:
    settings: Settings
    store: Store
    queue: TaskQueue
    engine: WhatsAppEngine
    backups: SessionBackups
    alerts: Alerts
    clock: Clock
    io: Offload
    state_dir: Path
    backoff: Backoff = field(default_factory=Backoff)
    fence: Fence | None = None
    # Where received files go (runner/inbound_media.py); None: they are announced as not stored.
    media: InboundMediaStore | None = None
    # Writes that must survive a store outage (runner/journal/); one in state_dir if not given.
    durable_writes: InitVar[DurableWrites | None] = None

    sessions: Repository[SessionDoc] = field(init=False)
    messages: Repository[MessageDoc] = field(init=False)
    pending: Repository[PendingSend] = field(init=False)  # an entry per unfinished send
    tenants: Repository[TenantDoc] = field(init=False)
    durable: DurableWrites = field(init=False)

    def __post_init__(self, durable_writes: DurableWrites | None) -> None:
        self.sessions = self.store.collection("sessions", SessionDoc)
        self.messages = self.store.collection("messages", MessageDoc)
        self.pending = self.store.collection("pending", PendingSend)
        self.tenants = self.store.collection("tenants", TenantDoc)
        self.durable = durable_writes or DurableWrites(
            Journal(self.state_dir / JOURNAL_FILE), self.io, self.store
        )

    @property
    def shard(self) -> int:
        return self.settings.shard_id
