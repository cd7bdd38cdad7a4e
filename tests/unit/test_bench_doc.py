"""`python -m bench all` rewrites the table at the top of docs/benchmarks.md and keeps the
record of earlier runs below it."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import write_doc
from bench.common import Result


def result(figure: float) -> Result:
    return Result("store", figure, "ms", 1.0, figure, "<= 1.3", figure <= 1.3, {"n": 1})


def test_a_new_run_replaces_the_table_and_keeps_earlier_runs(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_doc([(result(1.1), "python -m bench store")], doc)
    first = doc.read_text()
    assert "| 1.1 |" in first and "Runs after" not in first.split("## Details")[1]

    history = "\n## Runs after the first session's changes\n\nfigures of that time\n"
    doc.write_text(first + history)
    write_doc([(result(1.2), "python -m bench store")], doc)
    second = doc.read_text()
    assert "| 1.2 |" in second and "| 1.1 |" not in second
    assert second.endswith(history)
    assert second.count("## Details") == 1
