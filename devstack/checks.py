"""The README's test command: every quality gate, then the test suite.

Gates: ruff (lint and format), mypy --strict, import-linter (STYLE.md's dependency direction),
terraform fmt -check, checkov on infra/terraform, then pytest (unit + integration on the real
emulators). Any failure — including pytest collecting nothing (exit 5) — makes the command fail.
`--slow` also runs the long soak/chaos/benchmark-style tests; other arguments go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CODE = [
    "wagate",
    "functions",
    "runner",
    "wagate_cli",
    "devstack",
    "simulator",
    "emulators",
    "bench",
    "tests",
]
TOOLS_VENV = ROOT / ".tools-venv"
TOOLS_LOCK = ROOT / "requirements-tools.lock"
# The scan must not reach the network: no Bridgecrew/Prisma downloads, no update check.
CHECKOV_OFFLINE = [
    "CKV_SKIP_PACKAGE_UPDATE_CHECK=true",
    "BC_SKIP_MAPPING=TRUE",
    "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false",
]


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


def checkov_gate() -> tuple[str, list[str]]:
    """checkov on infra/terraform, from its own virtual environment (.tools-venv, pinned by
    requirements-tools.lock): it is heavy and its dependencies would fight the app's pins in
    .venv. Installed from PyPI on first use and whenever the lock changes; the scan itself
    downloads nothing (--skip-download and CHECKOV_OFFLINE)."""
    stamp = TOOLS_VENV / f".installed-{hashlib.sha256(TOOLS_LOCK.read_bytes()).hexdigest()[:16]}"
    checkov = TOOLS_VENV / "bin" / "checkov"
    if not stamp.exists() or not checkov.exists():
        print("== checkov: installing into .tools-venv (requirements-tools.lock) ...", flush=True)
        uv = BIN / "uv" if (BIN / "uv").exists() else shutil.which("uv")
        try:
            if uv is None:
                raise FileNotFoundError("uv is not installed (./dev installs it into .venv)")
            if not (TOOLS_VENV / "bin" / "python").exists():
                python3 = shutil.which("python3") or sys.executable
                subprocess.run([python3, "-m", "venv", str(TOOLS_VENV)], check=True)
            (TOOLS_VENV / ".gitignore").write_text("*\n")  # keep it out of git status
            tools_python = str(TOOLS_VENV / "bin" / "python")
            sync = [str(uv), "pip", "sync", "-q", "--python", tools_python, str(TOOLS_LOCK)]
            subprocess.run(sync, cwd=ROOT, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            reason = f"could not install checkov into .tools-venv: {e}"
            return ("checkov", [sys.executable, "-c", f"raise SystemExit({reason!r})"])
        for old in TOOLS_VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    scan = ["-d", "infra/terraform", "--framework", "terraform", "--quiet", "--compact"]
    return ("checkov", ["env", *CHECKOV_OFFLINE, str(checkov), *scan, "--skip-download"])


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
    checks.append(checkov_gate())
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
