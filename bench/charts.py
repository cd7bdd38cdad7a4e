"""PNG charts of a benchmark run for docs/benchmarks.md: latency distributions (accept latency
against its raw baseline, the load run's accept and accepted → read latencies, status lag),
recovery timelines (what happened when, after each runner SIGKILL) and the billed operations
of one message per phase.

`python -m bench all` draws them from its results; `python -m bench.charts LINES_FILE` draws
them from saved JSON result lines (what each bench prints last).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from bench.common import Result

IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
MILESTONES = [
    ("listening", "new runner listening"),
    ("lease_won", "lease won"),
    ("restoring", "sessions restoring"),
    ("nudged", "pending sends nudged"),
]


def _save(fig: Any, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _percentiles(ax: Any, series: dict[str, dict[str, float]], unit: str, title: str) -> None:
    keys = ["p50", "p95", "p99"]
    width = 0.8 / max(1, len(series))
    for n, (label, summary) in enumerate(series.items()):
        values = [float(summary.get(k) or "nan") for k in keys]  # a missing one is no bar
        xs = [i + n * width for i in range(len(keys))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, labels=[f"{v:.2g}" if v == v else "" for v in values], fontsize=7)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(keys))], keys)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def recovery_timeline(result: Result, folder: Path) -> Path:
    """One row per kill: the milestones of the new runner, the first send and the drain."""
    rounds = result.details["rounds"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rounds) + 1.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, r in enumerate(rounds):
        timeline = r.get("timeline", {})
        if r.get("drain_s") is not None:
            ax.barh(row, r["drain_s"], color="#dddddd", height=0.6)
        for n, (key, _) in enumerate(MILESTONES):
            if timeline.get(key) is not None:
                ax.plot(timeline[key], row, "|", ms=14, mew=2, color=colors[n])
        if r.get("first_send_s") is not None:
            ax.plot(r["first_send_s"], row, "o", color="black")
    for n, (_, label) in enumerate(MILESTONES):
        ax.plot([], [], "|", ms=10, mew=2, color=colors[n], label=label)
    ax.plot([], [], "o", color="black", label="first send")
    ax.axvline(12, color="red", ls="--", lw=1, label="target: first send <= 12 s")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(color="#dddddd", label="until the last send (drain)"))
    ax.set_yticks(range(len(rounds)), [f"{r['kind']} {i // 2 + 1}" for i, r in enumerate(rounds)])
    ax.invert_yaxis()
    ax.set_xlabel("seconds after the runner SIGKILL")
    ax.set_title("Recovery after a runner SIGKILL (python -m bench recovery)", fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    return _save(fig, folder, "recovery-timeline.png")


def accept_latency(result: Result, folder: Path) -> Path:
    d = result.details
    fig, ax = plt.subplots(figsize=(6, 3.5))
    series = {"api (POST → 202)": d["api_ms"], "raw write + task": d["raw_ms"]}
    if "raw_same_commit_ms" in d:
        series["raw, the accept's own writes"] = d["raw_same_commit_ms"]
    _percentiles(ax, series, "ms", "Accept latency (python -m bench accept-latency)")
    return _save(fig, folder, "accept-latency.png")


def load_latency(result: Result, folder: Path) -> Path:
    d = result.details
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    _percentiles(left, {"accept": d["accept_ms"]}, "ms", "Accept latency under load")
    _percentiles(
        right,
        {"accepted → read": d["accepted_to_read_s"], "status lag": d["status_lag_s"]},
        "s",
        "Accepted → read, and status lag",
    )
    fig.suptitle("python -m bench load", fontsize=10)
    return _save(fig, folder, "load-latency.png")


def billed_operations(result: Result, folder: Path) -> Path:
    cost = result.details["billed_operations"]
    phases = cost["per_message_by_phase"]
    units = ["reads", "writes", "deletes", "tasks"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bottom = [0.0] * len(units)
    for phase, counts in phases.items():
        values = [counts.get(u, 0.0) for u in units]
        ax.bar(units, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    floor = cost["floor_per_message"]
    ax.plot(units, [floor[u] for u in units], "k_", ms=30, mew=2, label="design floor")
    ax.set_ylabel("per delivered message")
    ax.set_title(
        f"Billed operations per message: {cost['usd_per_million_messages']} USD per million "
        f"messages (floor {cost['floor_usd_per_million_messages']})",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, folder, "billed-operations.png")


DRAWN = {
    "recovery": recovery_timeline,
    "accept-latency": accept_latency,
    "load": load_latency,
    "pipeline": billed_operations,
}


def write(results: Sequence[Result], folder: Path = IMG) -> list[Path]:
    """The charts these results allow; a bench without a chart is skipped."""
    paths = []
    for result in results:
        draw = DRAWN.get(result.bench)
        if draw is None:
            continue
        if result.bench == "pipeline" and "billed_operations" not in result.details:
            continue
        paths.append(draw(result, folder))
    return paths


def main(argv: list[str]) -> int:
    results = []
    for name in argv:
        for line in Path(name).read_text().splitlines():
            if line.startswith('{"bench"'):
                results.append(Result(**json.loads(line)))
    for path in write(results):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
