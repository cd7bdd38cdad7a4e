"""`python -m bench all` draws its charts from the results' details (bench/charts.py)."""

from __future__ import annotations

from pathlib import Path

from bench.charts import write
from bench.common import Result


def result(bench: str, details: dict[str, object]) -> Result:
    return Result(bench, 1.0, "u", None, None, "t", True, details)


def test_each_chart_is_a_png_drawn_from_the_details(tmp_path: Path) -> None:
    latency = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "mean": 1.2, "n": 10}
    rounds = [
        {
            "kind": kind,
            "first_send_s": 8.5,
            "drain_s": 14.0,
            "timeline": {"listening": 1.3, "lease_won": 8.0, "restoring": 8.1, "nudged": 8.4},
        }
        for kind in ("single", "burst")
    ]
    cost = {
        "per_message_by_phase": {"accept": {"writes": 2.0, "tasks": 1.0}, "claim": {"reads": 2.0}},
        "floor_per_message": {"reads": 1.0, "writes": 5.0, "deletes": 0.0, "tasks": 2.0},
        "usd_per_million_messages": 6.9,
        "floor_usd_per_million_messages": 5.6,
    }
    paths = write(
        [
            result("recovery", {"rounds": rounds}),
            result("accept-latency", {"api_ms": latency, "raw_ms": latency}),
            result(
                "load",
                {"accept_ms": latency, "accepted_to_read_s": latency, "status_lag_s": latency},
            ),
            result("pipeline", {"billed_operations": cost}),
            result("store", {}),  # no chart
        ],
        tmp_path,
    )
    assert [p.name for p in paths] == [
        "recovery-timeline.png",
        "accept-latency.png",
        "load-latency.png",
        "billed-operations.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
