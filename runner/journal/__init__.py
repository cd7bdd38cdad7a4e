"""The runner's write-behind journal (SPEC §4: serve through a Firestore outage; design in
docs/outage.md): the file (entries), the write-behind and its replayer (durable_writes), the
journaled session patches (session_patch) and alerts (durable_alerts). Every name importers
use is exported here, so `from runner.journal import …` does not depend on the split."""

from runner.journal.durable_alerts import AlertCall, DurableAlerts
from runner.journal.durable_writes import (
    PROBE_TIMEOUT_S,
    REPLAY_BATCH,
    REPLAY_TIMEOUT_S,
    STORE_TIMEOUT_S,
    DurableWrites,
    Handler,
    StoreTimedOut,
)
from runner.journal.entries import JOURNAL_FILE, Entry, Journal
from runner.journal.session_patch import SessionPatch, apply_session_patch, session_patcher

__all__ = [
    "JOURNAL_FILE",
    "PROBE_TIMEOUT_S",
    "REPLAY_BATCH",
    "REPLAY_TIMEOUT_S",
    "STORE_TIMEOUT_S",
    "AlertCall",
    "DurableAlerts",
    "DurableWrites",
    "Entry",
    "Handler",
    "Journal",
    "SessionPatch",
    "StoreTimedOut",
    "apply_session_patch",
    "session_patcher",
]
