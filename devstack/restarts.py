"""Restart the local stack's crashed compute services, the way the cloud would.

Cloud Run starts a new runner instance when one dies and Cloud Functions a new function
instance, so `wagate dev up` restarts a dead runner, api, sweeper or scheduler with backoff
(1 s, 2 s, 4 s … 30 s, back to 1 s once it has stayed up a minute) instead of stopping the
whole stack. The emulators and the simulator stand in for managed services and WhatsApp,
which do not crash under the gateway: when one of them dies the stack stops, saying which.
Hand-written: it is a loop over a handful of child processes that the stack already owns;
a process manager (supervisord, honcho) would have to own them instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from devstack.processes import Service, StackError
from wagate.domain.backoff import Backoff

RESTARTABLE = ("api", "sweeper", "scheduler")
STABLE_AFTER_S = 60.0
RESTART_BACKOFF = Backoff(base=1.0, cap=30.0)


def restartable(name: str) -> bool:
    """Compute the cloud replaces by itself: shard runners and the functions."""
    return name.startswith("runner-") or name in RESTARTABLE


@dataclass
class _Restarts:
    count: int = 0  # restarts since the service last stayed up STABLE_AFTER_S
    due_at: float | None = None  # a restart is scheduled for then
    up_since: float | None = None


class CrashRestarter:
    """Called every tick by `dev up`: schedules and performs restarts; returns what died and
    cannot be restarted."""

    def __init__(
        self,
        services: Mapping[str, Service],
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff = RESTART_BACKOFF,
    ) -> None:
        self._services = services
        self._say = say
        self._clock = clock
        self._backoff = backoff
        self._restarts: dict[str, _Restarts] = {}

    def check(self) -> list[str]:
        now = self._clock()
        fatal: list[str] = []
        for name, service in self._services.items():
            state = self._restarts.setdefault(name, _Restarts())
            if service.alive:
                if state.up_since is not None and now - state.up_since >= STABLE_AFTER_S:
                    state.count, state.up_since = 0, None
                continue
            if not restartable(name):
                fatal.append(name)
            elif state.due_at is None:
                delay = self._backoff.ceiling(state.count)
                state.due_at = now + delay
                self._say(
                    f"{name} exited ({_exit_status(service)}); restarting it in {delay:.0f}s, "
                    f"as Cloud Run would start a new instance (restart {state.count + 1})"
                )
            elif now >= state.due_at:
                self._restart(name, service, state)
        return fatal

    def _restart(self, name: str, service: Service, state: _Restarts) -> None:
        state.due_at = None
        state.count += 1
        try:
            service.start()
            service.wait_ready()
        except (StackError, OSError) as e:
            self._say(f"{name} did not come back: {str(e).splitlines()[0]}")
            service.kill()  # a half-started process must not linger; the next tick reschedules
            return
        state.up_since = self._clock()
        self._say(f"{name} is back (restart {state.count})")


def _exit_status(service: Service) -> str:
    code = service.process.returncode if service.process is not None else None
    if code is None:
        return "not running"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
