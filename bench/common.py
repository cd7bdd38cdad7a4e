"""Shared benchmark plumbing: the result line, percentiles, an emulator stack."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from devstack.provision import environment
from devstack.stack import Stack, StackConfig


@dataclass
class Result:
    bench: str
    figure: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    ok: bool
    details: dict[str, Any]

    def line(self) -> str:
        data = asdict(self)
        details = data.pop("details")
        return json.dumps({**data, "details": details})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "mean": round(statistics.fmean(values), 3) if values else float("nan"),
        "n": len(values),
    }


@contextmanager
def stack(
    *, everything: bool = False, only: tuple[str, ...] = (), **config: Any
) -> Iterator[Stack]:
    """The local stack: everything, the three GCP emulators (default), or `only` some."""
    s = Stack(StackConfig(**config))
    try:
        if everything:
            s.start_all()
        elif only:
            factories = {
                "firestore": s.firestore_service,
                "gcs": s.gcs_service,
                "tasks": s.tasks_service,
                "simulator": s.simulator_service,
            }
            s.start(*(factories[name]() for name in only))
        else:
            s.start_emulators()
        with environment(s.env):
            yield s
    finally:
        s.stop()
