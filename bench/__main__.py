"""`python -m bench NAME [--quick] [--sessions N]` or `python -m bench all [--quick]`."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Result

BENCHES: dict[str, tuple[str, str]] = {
    "store": ("bench.store", "run"),
    "backup": ("bench.backup", "run"),
    "restore": ("bench.sessions", "run_restore"),
    "session-memory": ("bench.sessions", "run_memory"),
    "pipeline": ("bench.pipeline", "run_pipeline"),
    "accept-latency": ("bench.accept_latency", "run_accept_latency"),
    "backup-restore": ("bench.cli_restore", "run"),
    "emulator-costs": ("bench.emulator_costs", "run"),
    "recovery": ("bench.recovery", "run"),
    "load": ("bench.load", "run"),
    "engine-density": ("bench.engine_density", "run"),
}
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
# Sections from the first of these on are the record of earlier runs, kept by write_doc.
HISTORY = "\n## Runs after "


def run_one(name: str, quick: bool, extra: dict[str, int]) -> Result:
    module_name, function = BENCHES[name]
    module = importlib.import_module(module_name)
    result: Result = getattr(module, function)(quick=quick, **extra)
    return result


def write_doc(
    results: list[tuple[Result, str]], doc: Path = DOC, images: Sequence[Path] = ()
) -> None:
    """The table, charts and details of this run, then the earlier runs' sections as they
    were."""
    old = doc.read_text() if doc.exists() else ""
    history = old[old.index(HISTORY) :] if HISTORY in old else ""
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench all` (or `./dev bench all`); every figure is compared with a",
        "raw baseline measured in the same run on the same machine (2 cores).",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The sections after the",
        'details ("Runs after …") record earlier runs, each with the code of its time.',
        "",
        "| bench | command | figure | baseline | ratio | target | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, cmd in results:
        lines.append(
            f"| {r.bench} | `{cmd}` | {r.figure} {r.unit} | {r.baseline} | {r.ratio} | "
            f"{r.target} | {'yes' if r.ok else 'NO'} |"
        )
    if images:
        lines += ["", "## Charts", ""]
        lines += [f"![{image.stem}](img/{image.name})" for image in images]
    lines += ["", "## Details", ""]
    for r, _ in results:
        lines += [f"### {r.bench}", "", "```json", r.line(), "```", ""]
    doc.write_text("\n".join(lines) + history)


def main(argv: list[str]) -> int:
    # SIGTERM unwinds like Ctrl-C, so every started emulator and runner is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", choices=[*BENCHES, "all"])
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--sessions", type=int, default=None)
    args = parser.parse_args(argv)
    extra = {"sessions": args.sessions} if args.sessions else {}
    names = list(BENCHES) if args.name == "all" else [args.name]
    results: list[tuple[Result, str]] = []
    for name in names:
        result = run_one(name, args.quick, extra)
        cmd = f"python -m bench {name}{' --quick' if args.quick else ''}"
        results.append((result, cmd))
        print(result.line(), flush=True)
    if args.name == "all":
        from bench import charts  # matplotlib is loaded only for a whole run

        write_doc(results, images=charts.write([r for r, _ in results]))
    return 0 if all(r.ok for r, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
