"""The whole local system (emulators, simulator, runner, functions) once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.stack import StackConfig, running
from tests.e2e.system import System


@contextmanager
def whole_system(root: Path) -> Iterator[System]:
    """The stack the end-to-end and the browser tests drive, started and stopped."""
    config = StackConfig(
        root=root,
        simulator_args=("--receipt-delay-ms=100", "--read-delay-ms=300"),
        # A stream held 5 s, not 25: the tests see it end and resume within seconds.
        extra_env={"WAGATE_BACKUP_DEBOUNCE_S": "0.2", "WAGATE_EVENT_STREAM_HOLD_S": "5"},
    )
    with running(config) as stack:
        yield System(stack)


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with whole_system(tmp_path_factory.mktemp("e2e")) as running:
        yield running
