"""`dev up` restarts a crashed runner or function with backoff, as Cloud Run would start a new
instance, and stops only when a stand-in for a managed service (an emulator, the simulator)
dies. Real child processes, a clock the test moves."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import Service
from devstack.restarts import CrashRestarter

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Service]]:
    made = {
        name: Service(name, SLEEPER, None, tmp_path / f"{name}.log")
        for name in ("firestore", "runner-0", "api")
    }
    for service in made.values():
        service.start()
    yield made
    for service in made.values():
        service.kill()


def test_a_killed_runner_is_restarted_after_its_backoff_and_said_so(
    services: dict[str, Service],
) -> None:
    clock, said = Clock(), list[str]()
    restarter = CrashRestarter(services, said.append, clock)
    runner = services["runner-0"]
    first_pid = runner.process.pid if runner.process else None
    runner.kill()

    assert restarter.check() == []
    assert not runner.alive
    assert "runner-0 exited (killed by signal 9); restarting it in 1s" in said[-1]
    assert restarter.check() == [] and not runner.alive  # not before its backoff

    clock.now += 1.0
    assert restarter.check() == []
    assert runner.alive and runner.process is not None and runner.process.pid != first_pid
    assert said[-1] == "runner-0 is back (restart 1)"


def test_restarts_back_off_while_a_runner_keeps_crashing_and_reset_once_it_stays_up(
    services: dict[str, Service],
) -> None:
    clock, said = Clock(), list[str]()
    restarter = CrashRestarter(services, said.append, clock)
    api = services["api"]
    delays = []
    for _ in range(4):
        api.kill()
        restarter.check()
        delays.append(said[-1].split("restarting it in ")[1].split("s,")[0])
        clock.now += 60.0 if len(delays) == 4 else 16.0
        restarter.check()
        assert api.alive
    assert delays == ["1", "2", "4", "8"]

    clock.now += 61.0  # stayed up a minute: the next crash starts from 1 s again
    restarter.check()
    api.kill()
    restarter.check()
    assert "restarting it in 1s" in said[-1]


def test_a_dead_emulator_is_reported_not_restarted(services: dict[str, Service]) -> None:
    said: list[str] = []
    restarter = CrashRestarter(services, said.append, Clock())
    services["firestore"].kill()
    assert restarter.check() == ["firestore"]
    assert not services["firestore"].alive
