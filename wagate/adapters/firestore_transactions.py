"""Firestore transactions that take no locks (commit_if_unchanged) and the shard fence they
check: the part of the Firestore adapter that decides what a transaction reads and how its
commit is guarded (docs/decisions.md, "Transactions take no locks")."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.types import write as write_types

from wagate.adapters import firestore_wire as wire
from wagate.errors import Conflict, FencedOut
from wagate.ports import Fence

CALL_TIMEOUT_S = 10.0
TRANSACTION_ATTEMPTS = 10
# A short, bounded retry for transient faults; a long outage surfaces as DependencyUnavailable.
RETRY = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=CALL_TIMEOUT_S)


def check_fence(client: firestore.Client, fence: Fence) -> None:
    """Inside a transaction, after its reads: refuse if the shard's lease no longer carries our
    token.

    The lease is read outside the transaction, so the transaction takes no lock on it. A
    transactional read would lock `shards/{n}` until commit, and a runner SIGKILLed between
    that read and its commit leaves the lock behind until Firestore expires the idle
    transaction (60 s in the emulator and in the service, whose server libraries lock what a
    transaction reads): its successor could not take the lease for that long, against the 10 s
    recovery target. The check happens after the documents it guards are locked, just before
    the commit; a send follows the commit either way, so a transactional read would not fence
    the send any tighter (docs/decisions.md, "The fence is read without a lock").
    """
    lease = client.collection("shards").document(str(fence.shard)).get(timeout=CALL_TIMEOUT_S)
    token = (lease.to_dict() or {}).get("token") if lease.exists else None
    if token != fence.token:
        raise FencedOut(f"shard {fence.shard}: fencing token {fence.token} is stale (now {token})")


def commit_if_unchanged(
    client: firestore.Client, refs: Sequence[Any], build: Callable[[Any, dict[str, Any]], None]
) -> None:
    """A transaction without locks: read `refs` (a plain batch get), let `build` add its writes
    to a batch, and commit it with each written document's precondition "unchanged since the
    read" (its update time, or "still missing"); if one changed, the whole commit fails and it
    starts over. This is how Firestore's web and mobile SDKs run transactions. The server
    libraries' own transactions lock what they read until the commit, and a runner SIGKILLed
    inside one left those messages locked for 60 s: its successor's claims and `sent` writes
    waited out lock timeouts, the first send came 24-54 s after the kill, and the slow answers
    were taken for an outage (docs/decisions.md, "Transactions take no locks")."""
    for attempt in range(TRANSACTION_ATTEMPTS):
        snaps = {
            s.reference._document_path: s
            for s in client.get_all(list(refs), retry=RETRY, timeout=CALL_TIMEOUT_S)
        }
        batch = client.batch()
        build(batch, snaps)
        if not batch._write_pbs:
            return
        for written in batch._write_pbs:
            _pin(written, snaps)
        try:
            wire.commit(batch, timeout=CALL_TIMEOUT_S)
            return
        except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted):
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # jitter: two writers part
    raise Conflict("the documents kept changing; retry", retry_after=1)


def _pin(written: Any, snaps: dict[str, Any]) -> None:
    """Set a write's precondition to the state its document was read in."""
    pb = write_types.Write.pb(written) if isinstance(written, write_types.Write) else written
    snap = snaps[pb.update.name if pb.HasField("update") else pb.delete]
    if snap.exists:
        pb.current_document.update_time.CopyFrom(snap.update_time.timestamp_pb())
    else:
        pb.current_document.exists = False
