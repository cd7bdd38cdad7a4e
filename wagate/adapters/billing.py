"""Counts the operations Google bills, at the adapter boundary, when WAGATE_COUNT_OPERATIONS
names a directory (benchmarks only; off by default, nothing is installed then).

Firestore bills document reads (a query is billed for each document it returns, at least
one; an aggregation one per 1,000 index entries counted, at least one), writes and deletes;
Cloud Tasks bills each API call and each delivery attempt. The counts are taken where the
client library calls the service (the Firestore GAPIC methods, the Cloud Tasks client), so
retries, optimistic re-reads and fence reads are all in. Each process writes its totals to
`<dir>/<service>-<pid>.json` about once a second; `python -m bench pipeline` adds them up per
phase (docs/benchmarks.md, "What one message costs"). Hand-written: a dozen wrapped calls, no
library counts billing units.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

COUNT_ENV = "WAGATE_COUNT_OPERATIONS"
_counts: Counter[str] = Counter()
_lock = threading.Lock()
_writer: threading.Thread | None = None


def enabled() -> bool:
    return bool(os.environ.get(COUNT_ENV))


def _add(key: str, n: int = 1) -> None:
    with _lock:
        _counts[key] += n


def _field(request: Any, name: str) -> Any:
    """A field of a request the library passes as a dict or as a message."""
    return request.get(name) if isinstance(request, dict) else getattr(request, name, None)


def _collection(document_path: str) -> str:
    """`projects/p/databases/d/documents/messages/m1` → `messages`; subcollections joined."""
    parts = document_path.split("/documents/", 1)[-1].split("/")
    return "/".join(parts[0::2])


def _write_kind(write: Any) -> tuple[str, str]:
    pb = getattr(type(write), "pb", None)
    raw = pb(write) if pb is not None and not hasattr(write, "HasField") else write
    if raw.HasField("update"):
        doc = raw.update
        status = doc.fields["status"].string_value if "status" in doc.fields else ""
        if raw.current_document.HasField("exists") and not raw.current_document.exists:
            kind = "create"
        else:
            kind = "update" if raw.HasField("update_mask") else "set"
        return _collection(doc.name), f"{kind}:{status}" if status else kind
    return _collection(raw.delete), "delete"


def _counted_stream(responses: Iterable[Any], on_end: Callable[[int], None]) -> Iterator[Any]:
    n = 0
    try:
        for response in responses:
            if getattr(response, "document", None) is not None and response.document.name:
                n += 1
            yield response
    finally:
        on_end(n)


def count_firestore(client: Any) -> None:
    """Wrap the client's GAPIC calls so each billed unit is counted."""
    if not enabled():
        return
    api = client._firestore_api
    commit, get, query, aggregate = (
        api.commit,
        api.batch_get_documents,
        api.run_query,
        api.run_aggregation_query,
    )

    def counted_commit(*args: Any, **kw: Any) -> Any:
        count_writes(_field(kw.get("request"), "writes") or [])
        return commit(*args, **kw)

    def counted_get(*args: Any, **kw: Any) -> Any:
        for name in _field(kw.get("request"), "documents") or []:
            _add(f"firestore.read|{_collection(name)}|get")
        return get(*args, **kw)

    def counted_query(*args: Any, **kw: Any) -> Any:
        structured = _field(kw.get("request"), "structured_query")
        froms = structured.from_ if structured is not None else []
        collection = froms[0].collection_id if froms else "?"
        key = f"firestore.read|{collection}|query"
        return _counted_stream(query(*args, **kw), lambda n: _add(key, max(1, n)))

    def counted_aggregate(*args: Any, **kw: Any) -> Any:
        structured = _field(kw.get("request"), "structured_aggregation_query")
        froms = structured.structured_query.from_ if structured is not None else []
        key = f"firestore.read|{froms[0].collection_id if froms else '?'}|count"
        results = list(aggregate(*args, **kw))
        counted = 0
        for response in results:
            for value in response.result.aggregate_fields.values():
                counted = max(counted, int(value.integer_value))
        _add(key, max(1, math.ceil(counted / 1000)))
        return iter(results)

    api.commit = counted_commit
    api.batch_get_documents = counted_get
    api.run_query = counted_query
    api.run_aggregation_query = counted_aggregate
    _start_writer()


def count_writes(writes: Iterable[Any]) -> None:
    """Count a commit's writes (the library's commits, and firestore_wire.commit's)."""
    if not enabled():
        return
    for write in writes:
        collection, kind = _write_kind(write)
        _add(f"firestore.{'delete' if kind == 'delete' else 'write'}|{collection}|{kind}")
    _start_writer()


def count_tasks(client: Any) -> None:
    """Wrap the Cloud Tasks client's calls (each is a billed operation)."""
    if not enabled():
        return
    for method in ("create_task", "run_task", "get_task", "delete_task"):
        original = getattr(client, method)

        def counted(*args: Any, _call: Any = original, _name: str = method, **kw: Any) -> Any:
            where = kw.get("parent") or kw.get("name") or ""
            queue = where.split("/queues/", 1)[-1].split("/", 1)[0]
            _add(f"tasks.{_name}|{queue.split('-', 1)[-1]}|call")
            return _call(*args, **kw)

        setattr(client, method, counted)
    _start_writer()


def count(key: str, n: int = 1) -> None:
    """Count something billed that no wrapped client call sees (a Cloud Storage object)."""
    if enabled():
        _add(key, n)
        _start_writer()


def _service() -> str:
    argv = " ".join(sys.argv)
    if "--target=" in argv:
        return argv.split("--target=", 1)[1].split()[0]
    if "runner" in argv:
        return f"runner-{os.environ.get('WAGATE_SHARD_ID', '0')}"
    return Path(sys.argv[0]).stem or "process"


def _start_writer() -> None:
    global _writer
    with _lock:
        if _writer is not None:
            return
        _writer = threading.Thread(target=_write_forever, name="billing-counts", daemon=True)
    _writer.start()


def _write_forever() -> None:
    folder = Path(os.environ[COUNT_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_service()}-{os.getpid()}.json"
    stop = threading.Event()
    while not stop.wait(1.0):
        with _lock:
            data = json.dumps(dict(_counts), sort_keys=True)
        partial = target.with_suffix(".tmp")
        partial.write_text(data)
        partial.replace(target)


def read_all(folder: Path) -> Counter[str]:
    """Every process's totals in `folder`, added up (keys keep the process's service name)."""
    total: Counter[str] = Counter()
    for path in folder.glob("*.json"):
        service = path.stem.rsplit("-", 1)[0]
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key, n in counts.items():
            total[f"{service}|{key}"] += int(n)
    return total
