"""`store`: the Firestore adapter's write and transaction latency against the raw client
calls, interleaved in the same run on the same emulator (target: adapter <= 1.3x raw p50).

Its details also give the CPU one message document's create costs to encode, the client
library's way against firestore_wire's (no emulator involved)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from bench.common import Result, stack, summary
from wagate.adapters.firestore import (
    FirestoreStore,
    add_create,
    add_update,
    make_client,
    to_fields,
)
from wagate.contracts import MessageDoc, TextContent

TARGET = 1.3


def _doc(i: int) -> MessageDoc:
    return MessageDoc(
        id=f"m{i}-{uuid.uuid4().hex[:6]}",
        tenant_id="t",
        session_id="s",
        shard=0,
        to="+15551234567",
        content=TextContent(body="benchmark"),
        wa_id=f"3EB0{i}",
    )


def run(quick: bool = False, **_: Any) -> Result:
    rounds = 100 if quick else 400
    with stack(only=("firestore",)):
        client = make_client(f"bench-{uuid.uuid4().hex[:8]}")
        adapter = FirestoreStore(client).collection("messages", MessageDoc)
        raw = client.collection("messages")
        samples: dict[str, list[float]] = {k: [] for k in ("put", "raw_put", "txn", "raw_txn")}
        docs = [_doc(i) for i in range(rounds)]
        # Warm up both paths (channel setup, first-call costs).
        for d in docs[:10]:
            adapter.put(d)
            raw.document(d.id).set(to_fields(d))
        for d in docs:
            t0 = time.perf_counter()
            adapter.put(d)
            t1 = time.perf_counter()
            raw.document(d.id + "r").set(to_fields(d))
            t2 = time.perf_counter()
            samples["put"].append((t1 - t0) * 1000)
            samples["raw_put"].append((t2 - t1) * 1000)
        for d in docs[: rounds // 2]:
            t0 = time.perf_counter()
            adapter.update(d.id, lambda m: m.model_copy(update={"attempts": m.attempts + 1}))
            t1 = time.perf_counter()
            _raw_increment(client, raw.document(d.id + "r"))
            t2 = time.perf_counter()
            samples["txn"].append((t1 - t0) * 1000)
            samples["raw_txn"].append((t2 - t1) * 1000)
    stats = {k: summary(v) for k, v in samples.items()}
    figure = stats["put"]["p50"]
    baseline = stats["raw_put"]["p50"]
    ratio = round(figure / baseline, 3)
    txn_ratio = round(stats["txn"]["p50"] / stats["raw_txn"]["p50"], 3)
    return Result(
        bench="store",
        figure=figure,
        unit="ms p50 per adapter write",
        baseline=baseline,
        ratio=ratio,
        target=f"adapter/raw p50 <= {TARGET} for writes and transactions",
        ok=ratio <= TARGET and txn_ratio <= TARGET,
        details={
            "latency_ms": stats,
            "transaction_ratio": txn_ratio,
            "rounds": rounds,
            "create_encode_us_per_doc": _encode_cost(client, 1000 if quick else 5000),
            "sent_patch_encode_us": _encode_cost(client, 1000 if quick else 5000, update=True),
        },
    )


def _encode_cost(client: firestore.Client, n: int, *, update: bool = False) -> dict[str, float]:
    """CPU µs to turn one message document into its create `Write` (or, with `update`, the
    runner's `sent` patch into its update `Write`): the library's batch.create / batch.update
    against the adapter's add_create / add_update (firestore_wire), in turns."""
    ref = client.collection("messages").document("m")
    sides: tuple[tuple[str, Callable[[Any, Any, dict[str, Any]], None]], ...]
    if update:
        at = datetime.now(UTC)
        fields: dict[str, Any] = {"status": "sent", "status_times.sent": at, "updated_at": at}
        sides = (("library", _library_update), ("wagate", add_update))
    else:
        fields = to_fields(_doc(0))
        sides = (("library", _library_create), ("wagate", add_create))
    spent = {"library": 0.0, "wagate": 0.0}
    for _ in range(2):
        for side, add in sides:
            batch = client.batch()
            started = time.process_time()
            for _ in range(n):
                add(batch, ref, fields)
            spent[side] += time.process_time() - started
    return {side: round(s * 1e6 / (2 * n), 1) for side, s in spent.items()}


def _library_create(batch: Any, ref: Any, fields: dict[str, Any]) -> None:
    batch.create(ref, fields)


def _library_update(batch: Any, ref: Any, fields: dict[str, Any]) -> None:
    batch.update(ref, fields)


def _raw_increment(client: firestore.Client, ref: Any) -> None:
    @firestore.transactional  # type: ignore[untyped-decorator]
    def bump(transaction: firestore.Transaction) -> None:
        snap = ref.get(transaction=transaction)
        data = snap.to_dict() or {}
        transaction.update(ref, {"attempts": data.get("attempts", 0) + 1})

    bump(client.transaction())
