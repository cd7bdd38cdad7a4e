"""What the recovery and load benches share: a whole running stack driven as a user drives it
(the api over HTTP with Idempotency-Keys, the simulator as the recipients' phones), and the two
clocks a user feels: when a recipient got a message, and when the api showed its receipts.

Status lag is the time from the recipient's receipt (the `delivered`/`read` time WhatsApp
stamped, which the message records in `status_times`) to the first poll of the api that
showed it; the poll period (STATUS_POLL_S) bounds how much of it is the poll's own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import httpx

from bench.common import percentile, stack
from bench.provisioning import create_tenant, provision_sessions
from bench.sessions import _wait_connected
from devstack.stack import Stack
from wagate.adapters.billing import COUNT_ENV, read_all

STATUS_POLL_S = 0.5
RECEIPT_ARGS = ("--receipt-delay-ms=50", "--read-delay-ms=150")


@contextlib.contextmanager
def live_stack(root: Path, **config: Any) -> Iterator[Stack]:
    """The whole system on a private root (its logs are read by the recovery timeline), the
    sweeper every 10 s, as the chaos test runs it; every process counts its billed operations."""
    with stack(
        everything=True,
        root=root,
        simulator_args=RECEIPT_ARGS,
        sweep_every_s=10.0,
        extra_env={COUNT_ENV: str(counts_dir(root))},
        **config,
    ) as s:
        yield s


def counts_dir(root: Path) -> Path:
    """Where the stack's processes write their billed-operation counts (bench/costs.py)."""
    return root / "counts"


def billed(root: Path) -> Counter[str]:
    return read_all(counts_dir(root))


def tenant_with_sessions(
    s: Stack, sessions: int, *, pacing_per_s: float, burst: int
) -> tuple[str, list[str]]:
    """A tenant with this pacing, and `sessions` connected sessions restored by the runner."""
    tenant_id, key = create_tenant(
        s,
        "bench-live",
        {
            "pacing_per_second": pacing_per_s,
            "pacing_burst": burst,
            "sends_per_minute": 100_000,
            "session_creates_per_minute": 10_000,
            "max_sessions": 10_000,
        },
    )
    s.services["runner-0"].stop()  # started again after provisioning, so it restores them
    session_ids = provision_sessions(s, sessions, tenant_id=tenant_id)
    s.start(s.runner_service(0))
    _wait_connected(s.runner_url(0), sessions, 120)
    return key, session_ids


@dataclass
class Posted:
    """One accepted send: what was asked, how long the 202 took, and the id it got."""

    i: int
    session_id: str
    to: str
    body: str
    message_id: str
    accept_ms: float
    accepted_at: float  # time.time() of the 202
    attempts: int = 1


@dataclass
class PostStats:
    answers: dict[int, int] = field(default_factory=dict)  # HTTP status → count (every try)
    errors: int = 0  # connection errors and timeouts

    def add(self, status: int) -> None:
        self.answers[status] = self.answers.get(status, 0) + 1


def post_until_accepted(
    client: httpx.Client,
    session_id: str,
    to: str,
    body: str,
    key: str,
    stats: PostStats,
    i: int,
    *,
    lock: threading.Lock,
    retries_for: float = 120.0,
) -> Posted | None:
    """POST with an Idempotency-Key, retried with the same key on 429/503/connection errors
    (as a careful client does) until 202; None if it never was."""
    payload = {"to": to, "content": {"type": "text", "body": body}}
    headers = {"Idempotency-Key": key}
    delay, attempts, deadline = 0.2, 0, time.monotonic() + retries_for
    while time.monotonic() < deadline:
        attempts += 1
        t0 = time.perf_counter()
        try:
            r = client.post(f"/v1/sessions/{session_id}/messages", json=payload, headers=headers)
        except httpx.HTTPError:
            with lock:
                stats.errors += 1
        else:
            with lock:
                stats.add(r.status_code)
            if r.status_code == 202:
                return Posted(
                    i,
                    session_id,
                    to,
                    body,
                    str(r.json()["id"]),
                    (time.perf_counter() - t0) * 1000,
                    time.time(),
                    attempts,
                )
            if r.status_code not in (429, 503):
                return None  # a 4xx for a valid request, or a 5xx: counted, not retried
        time.sleep(delay)
        delay = min(delay * 2, 3.0)
    return None


def api_client(s: Stack, key: str, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(
        base_url=s.url["api"], headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


def received(s: Stack, recipient: str) -> list[dict[str, Any]]:
    """What the recipient's phone got, in order (the simulator's inspection API)."""
    r = httpx.get(f"{s.url['simulator']}/control/received/{recipient.lstrip('+')}", timeout=30)
    r.raise_for_status()
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


class StatusWatch:
    """Polls the api's message listing of some sessions and records, per message and status,
    when the api first showed it (time.time()) and the status time the message carries."""

    def __init__(self, s: Stack, key: str, session_ids: list[str], page: int = 500) -> None:
        self._client = api_client(s, key)
        self._sessions = session_ids
        self._page = page
        self.seen: dict[tuple[str, str], tuple[float, float]] = {}  # (id, status) → (seen, at)
        self.polls = 0
        self.poll_s: list[float] = []  # how long each poll took (a bound on what it adds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for sid in self._sessions:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    self._poll(sid)
            self._stop.wait(STATUS_POLL_S)

    def _poll(self, session_id: str) -> None:
        started = time.time()
        r = self._client.get(
            f"/v1/sessions/{session_id}/messages", params={"direction": "out", "limit": self._page}
        )
        if r.status_code == 200:
            self._record(r.json()["items"], started)

    def _record(self, items: list[dict[str, Any]], started: float) -> None:
        now = time.time()
        self.polls += 1
        self.poll_s.append(now - started)
        for item in items:
            for status in ("delivered", "read"):
                stamp = item["status_times"].get(status)
                if stamp is not None and (item["id"], status) not in self.seen:
                    self.seen[(item["id"], status)] = (
                        now,
                        datetime.fromisoformat(stamp).timestamp(),
                    )

    def lags(
        self,
        message_ids: set[str],
        status: str = "read",
        *,
        after: float = float("-inf"),
        before: float = float("inf"),
    ) -> list[float]:
        """Seconds from the receipt to the api showing it, for these messages' receipts
        stamped within [after, before)."""
        return [
            max(0.0, seen - at)
            for (mid, st), (seen, at) in self.seen.items()
            if st == status and mid in message_ids and after <= at < before
        ]

    def wait_for(self, message_ids: set[str], status: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all((mid, status) in self.seen for mid in message_ids):
                return True
            time.sleep(0.25)
        return False


class PointWatch(StatusWatch):
    """StatusWatch by single-message reads (GET /v1/messages/{id}) of the messages `track`ed,
    until each showed `read`. For long runs: the listing's query costs the Firestore emulator a
    scan of every message (docs/benchmarks.md, emulator-costs), so with thousands of messages a
    listing poll took seconds and the lag measured grew with it; a point read does not."""

    def __init__(self, s: Stack, key: str) -> None:
        super().__init__(s, key, [])
        self._tracked: dict[str, None] = {}  # insertion-ordered set, appended from any thread

    def track(self, message_id: str) -> None:
        self._tracked[message_id] = None

    def _run(self) -> None:
        while not self._stop.is_set():
            for mid in list(self._tracked):
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    started = time.time()
                    r = self._client.get(f"/v1/messages/{mid}")
                    if r.status_code == 200:
                        self._record([r.json()], started)
                if (mid, "read") in self.seen:
                    self._tracked.pop(mid, None)
            self._stop.wait(STATUS_POLL_S / 2)


def p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 3) if values else None
