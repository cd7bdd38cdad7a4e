"""`emulator-costs`: what the Firestore emulator charges, in its own CPU time, per call.

The pipeline bench saturates the machine's 2 cores, so its ratio is decided by CPU per message,
and most of that is the Java emulator's. This prints the emulator's CPU per call for the calls
wagate and the raw baseline make (a write, an update, a batch, a claim-shaped transaction, a
get) and for the per-chat order query: over `messages` (which the emulator scans) and over the
`pending` entries (as large as the backlog), at growing collection sizes. The baseline is one
raw `set`; the figures explain docs/benchmarks.md ("Where the time goes"), they gate nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from bench.common import Result, stack
from wagate.adapters.firestore import make_client, to_fields
from wagate.contracts import MessageDoc, PendingSend, TextContent
from wagate.domain.messages import PENDING_VALUES, MessageStatus, chat_key

CHATS = 2000
SESSIONS = 50


def _java(root: psutil.Process) -> psutil.Process:
    for p in [root, *root.children(recursive=True)]:
        if "java" in p.name():
            return p
    raise RuntimeError("the Firestore emulator's Java process was not found")


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def _message(i: int, now: datetime) -> MessageDoc:
    status = random.choice([MessageStatus.SENT, MessageStatus.READ, MessageStatus.ACCEPTED])
    return MessageDoc(
        id=f"m{i:07d}",
        tenant_id="ten_1",
        session_id=f"ses_{i % SESSIONS}",
        shard=0,
        to=f"+1500{i % CHATS:07d}",
        content=TextContent(body=f"message {i}"),
        status=status,
        wa_id=f"3EB0{i:020d}",
        created_at=now - timedelta(seconds=100_000 - i),
    )


def run(quick: bool = False, **_: Any) -> Result:
    sizes = (2000, 8000) if quick else (2000, 8000, 16000)
    calls = 60 if quick else 150
    now = datetime.now(UTC)
    results: dict[str, float] = {}
    with stack(only=("firestore",)) as s:
        service = s.services["firestore"]
        assert service.process is not None
        java = _java(psutil.Process(service.process.pid))
        client = make_client(f"costs-{uuid.uuid4().hex[:8]}")
        messages = client.collection("messages")
        pending = client.collection("pending")

        def measure(name: str, call: Callable[[int], object], n: int = calls) -> None:
            for i in range(10):
                call(i)  # warm-up: JIT, channel
            before = _cpu(java)
            for i in range(n):
                call(i)
            results[name] = round((_cpu(java) - before) * 1000 / n, 2)

        doc = _message(0, now)
        measure("set_small", lambda i: messages.document(f"s{i}").set({"to": "+1", "n": i}))
        measure("set_message", lambda i: messages.document(f"f{i}").set(to_fields(doc)))
        measure("update_field", lambda i: messages.document(f"f{i}").update({"attempts": i}))

        def batch_of_5(i: int) -> None:
            batch = client.batch()
            for k in range(5):
                batch.update(messages.document(f"f{(i * 5 + k) % calls}"), {"attempts": i})
            batch.commit()

        def claim_shaped(i: int) -> None:
            refs = [messages.document(f"f{(i * 5 + k) % calls}") for k in range(5)]

            @firestore.transactional  # type: ignore[untyped-decorator]
            def claim(tx: firestore.Transaction) -> None:
                list(
                    client.get_all(
                        [*refs, client.collection("shards").document("0")], transaction=tx
                    )
                )
                for ref in refs:
                    tx.set(ref, to_fields(doc))

            claim(client.transaction())

        measure("batch_5_updates", batch_of_5, calls // 5)
        measure("transaction_read_6_write_5", claim_shaped, calls // 5)

        written = 0
        for size in sizes:
            while written < size:
                batch = client.batch()
                for i in range(written, min(size, written + 400)):
                    m = _message(i, now)
                    batch.set(messages.document(m.id), to_fields(m))
                    if m.status is MessageStatus.ACCEPTED:
                        batch.set(pending.document(m.id), to_fields(PendingSend.of(m)))
                batch.commit()
                written = min(size, written + 400)

            def old_query(i: int, size: int = size) -> None:
                j = random.randrange(size)
                q = (
                    messages.where(filter=FieldFilter("session_id", "==", f"ses_{j % SESSIONS}"))
                    .where(filter=FieldFilter("to", "==", f"+1500{j % CHATS:07d}"))
                    .where(filter=FieldFilter("status", "in", PENDING_VALUES))
                    .where(filter=FieldFilter("created_at", "<", now))
                    .order_by("created_at")
                    .limit(20)
                )
                list(q.stream())

            def pending_query(i: int, size: int = size) -> None:
                j = random.randrange(size)
                chat = chat_key(f"ses_{j % SESSIONS}", f"+1500{j % CHATS:07d}")
                q = (
                    pending.where(filter=FieldFilter("chat", "==", chat))
                    .where(filter=FieldFilter("created_at", "<", now))
                    .order_by("created_at")
                    .limit(20)
                )
                list(q.stream())

            measure(f"get_at_{size}", lambda i: messages.document(f"m{i:07d}").get())
            measure(f"order_query_messages_at_{size}", old_query, max(20, calls // 3))
            measure(f"order_query_pending_at_{size}", pending_query)
    largest = sizes[-1]
    figure = results[f"order_query_pending_at_{largest}"]
    return Result(
        bench="emulator-costs",
        figure=figure,
        unit=f"ms of emulator CPU per order query over pending entries ({largest} messages)",
        baseline=results["set_small"],
        ratio=round(figure / results["set_small"], 3),
        target="informational: explains the pipeline ratio (docs/benchmarks.md)",
        ok=True,
        details={"emulator_cpu_ms_per_call": results, "calls_per_figure": calls},
    )
