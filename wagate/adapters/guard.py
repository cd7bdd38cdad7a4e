"""A circuit breaker and a stopwatch around one vendor dependency (Firestore, Cloud Storage,
Cloud Tasks).

Each adapter runs its vendor calls inside `guard.call(operation)`. The breaker counts only
outages (DependencyUnavailable): a NotFound, a Conflict, a stale generation or a fencing
refusal is the dependency *answering*, so it counts as a success. After `fail_max` outages in
a row the breaker opens and, for `reset_timeout_s`, calls fail at once with
DependencyUnavailable(retry_after=seconds until the next trial) instead of each waiting out
its own timeouts and retries; then one call goes through as a trial (half-open): an answer
closes the breaker, another outage opens it again.

The state machine is pybreaker's; this wrapper adds what pybreaker does not know: which
exceptions are outages, wagate's error type with its Retry-After, and timing every call for a
`CallObserver` (metrics, store latency percentiles). pybreaker's `calling()` is used rather
than `call()`: `call()` holds the breaker's lock for the whole call, which would serialize
every request thread on one lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

import pybreaker

from wagate.errors import DependencyUnavailable
from wagate.ports import CallObserver

BreakerState = Literal["closed", "open", "half_open"]


def _is_answer(error: BaseException) -> bool:
    """pybreaker's exclusion test: everything but an outage is an answer."""
    return not isinstance(error, DependencyUnavailable)


class DependencyGuard:
    """The breaker and call timer of one dependency, shared by every adapter object using it."""

    def __init__(
        self,
        name: str,
        *,
        observer: CallObserver | None = None,
        fail_max: int = 5,
        reset_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.observer = observer
        self.reset_timeout_s = reset_timeout_s
        # Kept so the time the breaker opened can be read through the storage's public API.
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=[_is_answer],
            state_storage=self._storage,
            name=name,
            # The call that trips the breaker still raises its own DependencyUnavailable.
            throw_new_error_on_trip=False,
        )

    @property
    def state(self) -> BreakerState:
        current = self._breaker.current_state
        if current == pybreaker.STATE_OPEN:
            return "half_open" if self.retry_after() <= 0 else "open"
        if current == pybreaker.STATE_HALF_OPEN:
            return "half_open"
        return "closed"

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when it is not open)."""
        opened_at = self._storage.opened_at
        if self._breaker.current_state != pybreaker.STATE_OPEN or opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, self.reset_timeout_s - elapsed)

    @contextmanager
    def call(self, operation: str) -> Iterator[None]:
        """Run one vendor call (the with-block) through the breaker, timed.

        `operation` names the kind of call ("get", "transaction", "create_task"...), not the
        document: it becomes a metric label, so it must have few values."""
        started = time.perf_counter()
        try:
            with self._breaker.calling():
                yield
        except pybreaker.CircuitBreakerError:  # open: the vendor was not called, nothing to time
            raise DependencyUnavailable(
                f"{self.name} is unavailable (circuit open after repeated failures)",
                retry_after=self.retry_after() or self.reset_timeout_s,
            ) from None
        except BaseException as error:
            self._observe(operation, started, ok=_is_answer(error))
            raise
        self._observe(operation, started, ok=True)

    def _observe(self, operation: str, started: float, *, ok: bool) -> None:
        if self.observer is not None:
            self.observer.observe(self.name, operation, time.perf_counter() - started, ok)
