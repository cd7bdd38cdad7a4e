"""Installs the Node dependencies (package-lock.json at the repository root) when they are missing
or older than the lock file: `npm ci`, once, with a stamp. Offline once installed. Used by `./dev`
and by the tests, so a fresh clone needs nothing but Node 20 and npm."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "package-lock.json"
STAMP = ROOT / "node_modules" / ".wagate-installed"


class NodeMissing(RuntimeError):
    """Node or npm is not installed: the Baileys engine cannot run."""


def node_modules_current() -> bool:
    return STAMP.exists() and STAMP.read_text() == LOCK.read_text()


def ensure_node_modules() -> Path:
    """Returns the node_modules directory, running `npm ci` first if needed."""
    if node_modules_current():
        return STAMP.parent
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        raise NodeMissing(
            "the Baileys engine needs Node.js 20+ and npm: install them (e.g. apt-get install "
            "nodejs npm, or https://nodejs.org) and run ./dev again"
        )
    with open(ROOT / ".npm-ci.lock", "w") as guard:  # two test workers must not both run npm ci
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not node_modules_current():
            subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            STAMP.write_text(LOCK.read_text())
    return STAMP.parent


def main() -> int:
    """`python -m runner.engines.baileys.deps`: what ./dev runs before demo, test and bench."""
    try:
        ensure_node_modules()
    except NodeMissing as e:
        print(f"wagate: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError:
        print("wagate: npm ci failed (is the npm registry reachable?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
