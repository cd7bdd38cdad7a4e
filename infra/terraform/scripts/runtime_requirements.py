"""The runtime part of requirements.lock, for the runner image and the functions' requirements.txt.

requirements.lock pins the runtime dependencies *and* the dev tools (it is compiled with
`--extra dev`). Deployed code must get exactly the lock's versions, but none of the tools
(pytest, mypy, ruff, schemathesis …). This walks the lock's `# via` annotations from the
runtime roots — `[project].dependencies` of pyproject.toml — and prints the pinned lines of
every package they reach. Offline and stdlib-only, so it runs in Cloud Build and in a
Dockerfile's builder stage before anything is installed.

`--extra NAME` adds an optional-dependency group's roots (the runner image takes `whatsmeow`;
the functions take none).

Usage: python runtime_requirements.py [--lock requirements.lock] [--pyproject pyproject.toml]
       [--extra NAME ...]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    line: str
    parents: set[str] = field(default_factory=set)


def parse_lock(text: str) -> dict[str, Pin]:
    """Pinned requirement lines of a `uv pip compile` output, with their `# via` parents."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line:
            continue
        if not line.startswith(" ") and not line.startswith("#"):
            match = _NAME.match(line)
            if match is None or "==" not in line:
                raise ValueError(f"unpinned or unreadable requirement line: {line!r}")
            current = Pin(line=line.strip())
            pins[normalize(match.group(1))] = current
            in_via = False
            continue
        comment = line.strip()
        if current is None or not comment.startswith("#"):
            continue
        body = comment.lstrip("#").strip()
        if body.startswith("via"):
            rest = body[len("via") :].strip()
            in_via = not rest
            if rest:
                current.parents.add(rest)
        elif in_via and body:
            current.parents.add(body)
    return pins


def runtime_roots(pyproject: dict[str, object], extras: tuple[str, ...] = ()) -> set[str]:
    project = pyproject.get("project")
    if not isinstance(project, dict):
        raise ValueError("pyproject.toml has no [project] table")
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if not isinstance(optional, dict) or extra not in optional:
            raise ValueError(f"pyproject.toml has no optional dependency group {extra!r}")
        requirements.extend(optional[extra])
    roots: set[str] = set()
    for requirement in requirements:
        match = _NAME.match(str(requirement))
        if match is None:
            raise ValueError(f"unreadable dependency {requirement!r}")
        roots.add(normalize(match.group(1)))
    return roots


def runtime_closure(pins: dict[str, Pin], roots: set[str]) -> list[str]:
    """Every pinned package reachable from the roots through `# via` edges (parent → child)."""
    missing = roots - pins.keys()
    if missing:
        raise ValueError(f"runtime dependencies missing from the lock: {sorted(missing)}")
    children: dict[str, set[str]] = {}
    for name, pin in pins.items():
        for parent in pin.parents:
            parent_name = _NAME.match(parent)
            if parent_name is not None:
                children.setdefault(normalize(parent_name.group(1)), set()).add(name)
    reached: set[str] = set()
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo.extend(children.get(name, set()) - reached)
    return [pins[name].line for name in sorted(reached)]


def runtime_requirements(lock: Path, pyproject: Path, extras: tuple[str, ...] = ()) -> list[str]:
    pins = parse_lock(lock.read_text())
    roots = runtime_roots(tomllib.loads(pyproject.read_text()), extras)
    return runtime_closure(pins, roots)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--extra", action="append", default=[], help="optional group to add")
    args = parser.parse_args(argv)
    lines = runtime_requirements(args.lock, args.pyproject, tuple(args.extra))
    sys.stdout.write(
        "# Runtime dependencies of wagate, pinned by requirements.lock (dev tools excluded).\n"
        "# Generated by infra/terraform/scripts/runtime_requirements.py; do not edit.\n"
    )
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
