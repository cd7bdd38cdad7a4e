"""Runtime measurements behind the runner's /health, /metrics and alert checks.

- `CallLatency`: the `CallObserver` the adapters' dependency guards report every vendor call
  to. It feeds a Prometheus histogram (cumulative, for dashboards) and a rolling window per
  dependency and operation, from which the health endpoint and the store-latency alert read
  p50/p95/p99 of the last few minutes.
- `LatencyWindow` / `RollingCount`: fixed-size rings of time slices, so memory stays constant
  however many calls or events there are.
- `MemoryTrend`: RSS snapshots; a leak is sustained growth over K successive snapshots.
- `SendTimings`: accepted→sent and sent→delivered, for the send latency histogram.
- The Prometheus metrics the runner exposes. They live in prometheus-client's process-wide
  registry, as that library intends: one runner process serves one shard.

Hand-written on purpose: prometheus-client's Histogram is cumulative since the process
started and its Summary computes no quantiles, and no percentile-sketch library is among
wagate's dependencies. A log-scale histogram per time slice is a few dozen lines and bounded.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Histogram

# ---------------------------------------------------------------- Prometheus metrics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

MESSAGES = Counter(
    "wagate_messages_total",
    "Message status changes made by this runner (sent, failed, dead, delivered, read, "
    "deduplicated)",
    ["status"],
)
SEND_LATENCY = Histogram(
    "wagate_send_latency_seconds",
    "accepted_to_sent: API accept until WhatsApp's server ack; sent_to_delivered: server ack "
    "until the delivery receipt",
    ["stage"],
    buckets=_SEND_BUCKETS,
)
RECONNECTS = Counter(
    "wagate_reconnects_total",
    "Session disconnects that led to a reconnect or a stop, by WhatsApp reason code",
    ["reason", "policy"],
)
BACKUP_SECONDS = Histogram(
    "wagate_backup_seconds",
    "Encrypt and upload of one session auth-state backup",
    buckets=_LATENCY_BUCKETS,
)
BACKUP_FAILURES = Counter("wagate_backup_failures_total", "Session backups that failed", ["kind"])
INBOUND_MEDIA = Counter(
    "wagate_inbound_media_total",
    "Received files by outcome: stored, already_stored (a redelivery), or the error code of one "
    "announced without its file",
    ["outcome"],
)
LEASE_RENEWALS = Counter(
    "wagate_lease_renewals_total",
    "Shard lease renewals by outcome (ok, fenced_out, store_unreachable)",
    ["outcome"],
)
DEPENDENCY_CALLS = Histogram(
    "wagate_dependency_call_seconds",
    "Calls to Firestore, Cloud Storage and Cloud Tasks by operation; outcome unavailable = "
    "the dependency did not answer",
    ["dependency", "operation", "outcome"],
    buckets=_LATENCY_BUCKETS,
)

KNOWN_REASONS = frozenset({401, 403, 408, 411, 428, 440, 500, 503, 515})


def reason_label(code: int) -> str:
    """Reason codes as a label with a bounded set of values."""
    return str(code) if code in KNOWN_REASONS else "other"


def counter_total(counter: Counter) -> float:
    """Sum of a counter over all its label sets (prometheus-client's public collect())."""
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


# ---------------------------------------------------------------- rolling windows

Monotonic = Callable[[], float]

# Log-scale bins from 0.1 ms to ~100 s, four per doubling: a percentile read at a bin's
# geometric middle is within ±9 % of the true value, which is plenty for "p99 > 500 ms".
_MIN_S = 1e-4
_PER_DOUBLING = 4
_BINS = 80
_LOG_STEP = math.log(2) / _PER_DOUBLING


def _bin_of(seconds: float) -> int:
    if seconds <= _MIN_S:
        return 0
    return min(_BINS - 1, int(math.log(seconds / _MIN_S) / _LOG_STEP))


def _middle_of(index: int) -> float:
    return _MIN_S * math.exp((index + 0.5) * _LOG_STEP)


class _Slices:
    """A ring of `count` time slices of `width` seconds; a slice is reused (cleared) once it
    falls out of the window."""

    def __init__(self, window_s: float, count: int, clock: Monotonic) -> None:
        if window_s <= 0 or count < 1:
            raise ValueError("window_s must be > 0 and count >= 1")
        self.width = window_s / count
        self.count = count
        self.clock = clock
        self.epochs = [-1] * count

    def current(self) -> tuple[int, int, bool]:
        """(slot, epoch, stale): `stale` means the slot holds an older epoch's data."""
        epoch = int(self.clock() // self.width)
        slot = epoch % self.count
        return slot, epoch, self.epochs[slot] != epoch

    def live(self) -> Iterable[int]:
        """Slots whose data is inside the window."""
        epoch = int(self.clock() // self.width)
        oldest = epoch - self.count + 1
        return (i for i, e in enumerate(self.epochs) if oldest <= e <= epoch)


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 2)

        return {
            "count": self.count,
            "p50_ms": ms(self.p50),
            "p95_ms": ms(self.p95),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        }


class LatencyWindow:
    """Latency percentiles of the last `window_s` seconds in constant memory."""

    def __init__(
        self, window_s: float = 300.0, slices: int = 10, clock: Monotonic = time.monotonic
    ) -> None:
        self._slices = _Slices(window_s, slices, clock)
        self._bins = [[0] * _BINS for _ in range(slices)]
        self._max = [0.0] * slices

    def record(self, seconds: float) -> None:
        slot, epoch, stale = self._slices.current()
        if stale:
            self._bins[slot] = [0] * _BINS
            self._max[slot] = 0.0
            self._slices.epochs[slot] = epoch
        self._bins[slot][_bin_of(seconds)] += 1
        self._max[slot] = max(self._max[slot], seconds)

    def percentiles(self) -> Percentiles:
        totals = [0] * _BINS
        worst = 0.0
        for slot in self._slices.live():
            for i, n in enumerate(self._bins[slot]):
                totals[i] += n
            worst = max(worst, self._max[slot])
        count = sum(totals)
        if count == 0:
            return Percentiles(0, None, None, None, None)

        def at(q: float) -> float:
            rank = max(1, math.ceil(q * count))
            seen = 0
            for i, n in enumerate(totals):
                seen += n
                if seen >= rank:
                    return min(_middle_of(i), worst)
            return worst  # pragma: no cover (ranks never exceed the count)

        return Percentiles(count, at(0.50), at(0.95), at(0.99), worst)


class RollingCount:
    """Number of events in the last `window_s` seconds, in constant memory."""

    def __init__(
        self, window_s: float, slices: int = 10, clock: Monotonic = time.monotonic
    ) -> None:
        self._slices = _Slices(window_s, slices, clock)
        self._counts = [0.0] * slices

    def add(self, n: float = 1.0) -> None:
        slot, epoch, stale = self._slices.current()
        if stale:
            self._counts[slot] = 0.0
            self._slices.epochs[slot] = epoch
        self._counts[slot] += n

    def total(self) -> float:
        return sum(self._counts[slot] for slot in self._slices.live())


# ---------------------------------------------------------------- dependency calls

ALL_OPERATIONS = "*"


class CallLatency:
    """ports.CallObserver: every guarded vendor call, into Prometheus and rolling windows.

    Called from the runner's I/O threads, hence the lock; operation names come from the
    adapters (a handful per dependency), so the number of windows is bounded."""

    def __init__(self, *, window_s: float = 300.0, clock: Monotonic = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[tuple[str, str], LatencyWindow] = {}
        self._unavailable: dict[str, RollingCount] = {}
        self._lock = threading.Lock()

    def observe(self, dependency: str, operation: str, seconds: float, ok: bool) -> None:
        DEPENDENCY_CALLS.labels(dependency, operation, "ok" if ok else "unavailable").observe(
            seconds
        )
        with self._lock:
            for key in ((dependency, operation), (dependency, ALL_OPERATIONS)):
                window = self._windows.get(key)
                if window is None:
                    window = self._windows[key] = LatencyWindow(self.window_s, clock=self._clock)
                window.record(seconds)
            if not ok:
                failures = self._unavailable.get(dependency)
                if failures is None:
                    failures = self._unavailable[dependency] = RollingCount(
                        self.window_s, clock=self._clock
                    )
                failures.add()

    def percentiles(self, dependency: str, operation: str = ALL_OPERATIONS) -> Percentiles:
        with self._lock:
            window = self._windows.get((dependency, operation))
            return window.percentiles() if window else Percentiles(0, None, None, None, None)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """{dependency: {"all": {...}, "unavailable": n, "operations": {op: {...}}}}"""
        with self._lock:
            result: dict[str, dict[str, object]] = {}
            for (dependency, operation), window in sorted(self._windows.items()):
                entry = result.setdefault(dependency, {"operations": {}})
                stats = window.percentiles().as_dict()
                if operation == ALL_OPERATIONS:
                    entry["all"] = stats
                    failures = self._unavailable.get(dependency)
                    entry["unavailable"] = int(failures.total()) if failures else 0
                else:
                    operations = entry["operations"]
                    assert isinstance(operations, dict)
                    operations[operation] = stats
            return result


# ---------------------------------------------------------------- memory


class MemoryTrend:
    """RSS snapshots; `leaking` once the last `successive` snapshots each grew and together
    grew by at least `min_growth_bytes` and `min_growth_ratio` of where they started.

    Python rarely returns memory to the OS, so a flat or falling RSS between two snapshots is
    the normal steady state; rising at every one of K snapshots is not."""

    def __init__(
        self,
        *,
        successive: int = 10,
        min_growth_bytes: int = 32 * 1024 * 1024,
        min_growth_ratio: float = 0.10,
    ) -> None:
        if successive < 2:
            raise ValueError("successive must be >= 2")
        self.successive = successive
        self.min_growth_bytes = min_growth_bytes
        self.min_growth_ratio = min_growth_ratio
        self._samples: deque[tuple[float, int]] = deque(maxlen=successive + 1)

    def add(self, at: float, rss_bytes: int) -> None:
        self._samples.append((at, rss_bytes))

    @property
    def latest(self) -> int | None:
        return self._samples[-1][1] if self._samples else None

    @property
    def leaking(self) -> bool:
        if len(self._samples) < self.successive + 1:
            return False
        values = [rss for _, rss in self._samples]
        if any(b <= a for a, b in itertools.pairwise(values)):
            return False
        growth = values[-1] - values[0]
        return growth >= self.min_growth_bytes and growth >= self.min_growth_ratio * values[0]

    def growth_per_hour(self) -> float | None:
        """Bytes per hour between the oldest and newest snapshot kept."""
        if len(self._samples) < 2:
            return None
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return (last - first) / (t1 - t0) * 3600

    def snapshot(self) -> dict[str, object]:
        per_hour = self.growth_per_hour()
        return {
            "rss_bytes": self.latest,
            "growth_bytes_per_hour": None if per_hour is None else round(per_hour),
            "snapshots": len(self._samples),
            "leak_suspected": self.leaking,
        }


# ---------------------------------------------------------------- send latency


class SendTimings:
    """Feeds SEND_LATENCY and MESSAGES. Remembers the last `remember` sends (wa_id → time of
    the server ack, receipts seen) to time their delivery receipts; receipts of older or
    unknown sends (from before this process started) are not counted or timed. Receipts are
    at-least-once: each send is counted as delivered and as read at most once."""

    _ORDER = ("delivered", "read")  # a read receipt that overtook its delivery implies it

    def __init__(self, remember: int = 4096) -> None:
        self._remember = remember
        # wa_id → (ack time, receipts seen: 0 none, 1 delivered, 2 read)
        self._sent: OrderedDict[str, tuple[datetime, int]] = OrderedDict()
        self._lock = threading.Lock()

    def sent(self, wa_id: str, accepted_at: datetime | None, sent_at: datetime) -> None:
        MESSAGES.labels("sent").inc()
        if accepted_at is not None:
            SEND_LATENCY.labels("accepted_to_sent").observe(
                max(0.0, (sent_at - accepted_at).total_seconds())
            )
        with self._lock:
            self._sent[wa_id] = (sent_at, 0)
            self._sent.move_to_end(wa_id)
            while len(self._sent) > self._remember:
                self._sent.popitem(last=False)

    def receipt(self, kind: str, wa_ids: Iterable[str], at: datetime) -> None:
        if kind not in self._ORDER:
            return
        level = self._ORDER.index(kind) + 1
        for wa_id in wa_ids:
            with self._lock:
                known = self._sent.get(wa_id)
                if known is None or known[1] >= level:
                    continue  # not ours to time, or a redelivered receipt
                sent_at, seen = known
                self._sent[wa_id] = (sent_at, level)
            for status in self._ORDER[seen:level]:
                MESSAGES.labels(status).inc()
            if seen == 0:
                SEND_LATENCY.labels("sent_to_delivered").observe(
                    max(0.0, (at - sent_at).total_seconds())
                )


SEND_TIMINGS = SendTimings()
