"""The README's test command: every quality gate, then the test suite.

Gates: ruff (lint and format), mypy --strict, import-linter (STYLE.md's dependency direction),
terraform fmt -check, then pytest (unit + integration on the real emulators). Any failure —
including pytest collecting nothing (exit 5) — makes the command fail.
`--slow` also runs the long soak/chaos/benchmark-style tests; other arguments go to pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CODE = ["wagate", "functions", "runner", "simulator", "emulators", "bench", "tests"]


def _run(name: str, argv: list[str]) -> bool:
    started = time.monotonic()
    print(f"== {name}: {' '.join(argv)}", flush=True)
    result = subprocess.run(argv, cwd=ROOT, check=False)
    ok = result.returncode == 0
    print(
        f"== {name}: {'ok' if ok else f'FAILED (exit {result.returncode})'} "
        f"in {time.monotonic() - started:.1f}s",
        flush=True,
    )
    return ok


def gates() -> list[str]:
    failed: list[str] = []
    paths = [p for p in CODE if (ROOT / p).exists()]
    checks: list[tuple[str, list[str]]] = [
        ("ruff lint", [str(BIN / "ruff"), "check", *paths]),
        ("ruff format", [str(BIN / "ruff"), "format", "--check", *paths]),
        ("mypy", [str(BIN / "mypy")]),
        ("import-linter", [str(BIN / "lint-imports")]),
    ]
    terraform = shutil.which("terraform")
    if terraform:
        checks.append(
            ("terraform fmt", [terraform, "fmt", "-check", "-recursive", "infra/terraform"])
        )
    else:
        print("== terraform fmt: terraform not installed, gate skipped", flush=True)
    for name, argv in checks:
        if not _run(name, argv):
            failed.append(name)
    return failed


def main(argv: list[str]) -> int:
    slow = "--slow" in argv
    pytest_args = [a for a in argv if a != "--slow"]
    env = dict(os.environ)
    if slow:
        env["WAGATE_SLOW"] = "1"
    failed = gates()
    print(f"== gates: {'all ok' if not failed else 'FAILED: ' + ', '.join(failed)}", flush=True)
    cmd = [str(BIN / "python"), "-m", "pytest", *pytest_args]
    print(f"== pytest: {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if result.returncode == 5:
        print("== pytest collected no tests: that is a failure", flush=True)
    if failed or result.returncode != 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
