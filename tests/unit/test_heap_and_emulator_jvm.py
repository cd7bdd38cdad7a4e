"""Two start-up settings behind the accept's latency (docs/decisions.md, "The accept's last 0.3
of its latency ratio"): the api freezes its heap once built, and the dev stack's Java emulators
run with C1 only, after whatever JAVA_TOOL_OPTIONS the environment already sets."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from devstack import stack
from functions import server


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settling_the_heap_takes_what_is_alive_out_of_collections(unfrozen: None) -> None:
    assert gc.get_freeze_count() == 0
    server.settle_heap()
    assert gc.get_freeze_count() > 1000  # the imported libraries, at least


def test_the_emulators_jvm_gets_c1_only_after_the_environments_own_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JAVA_TOOL_OPTIONS", raising=False)
    assert stack._java_options() == {"JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1"}
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xmx2g")
    assert stack._java_options() == {"JAVA_TOOL_OPTIONS": "-Xmx2g -XX:TieredStopAtLevel=1"}
