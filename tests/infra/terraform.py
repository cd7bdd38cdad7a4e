"""Reading infra/terraform for the tests: every .tf of a directory parsed with python-hcl2
(string quotes stripped, comments dropped) and merged by block kind.

Terraform cannot plan here (the Google provider cannot be downloaded), so the tests read the
configuration statically: literal values are compared with the code's sources of truth, and
expressions are checked as text where a value only exists at plan time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
MODULE_DIR = TERRAFORM / "modules" / "wagate"
ROOT_DIR = TERRAFORM / "live"  # the one root module; envs/<env>.tfvars sizes each deployment
ENVS = ("dev", "prod")

_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


@dataclass
class Config:
    """One Terraform directory (a module or a root module)."""

    path: Path
    text: dict[str, str] = field(default_factory=dict)  # file name -> source
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    resource_file: dict[str, str] = field(default_factory=dict)  # "type.name" -> file

    def resource(self, type_: str, name: str) -> dict[str, Any]:
        return self.resources[type_][name]

    @property
    def all_text(self) -> str:
        return "\n".join(self.text.values())


def _add(target: dict[str, Any], key: str, value: Any, what: str) -> None:
    if key in target:
        raise AssertionError(f"{what} {key} is declared twice")
    target[key] = value


@functools.cache
def load(path: Path) -> Config:
    config = Config(path=path)
    for tf in sorted(path.glob("*.tf")):
        source = tf.read_text()
        config.text[tf.name] = source
        parsed = hcl2.loads(source, serialization_options=_OPTIONS)
        for block in parsed.get("resource", []):
            for type_, named in block.items():
                for name, body in named.items():
                    _add(config.resources.setdefault(type_, {}), name, body, f"resource {type_}")
                    config.resource_file[f"{type_}.{name}"] = tf.name
        for block in parsed.get("data", []):
            for type_, named in block.items():
                for name, body in named.items():
                    _add(config.data.setdefault(type_, {}), name, body, f"data {type_}")
        for block in parsed.get("locals", []):
            for name, value in block.items():
                _add(config.locals, name, value, "local")
        for kind, target in (
            ("variable", config.variables),
            ("output", config.outputs),
            ("module", config.modules),
            ("check", config.checks),
        ):
            for block in parsed.get(kind, []):
                for name, body in block.items():
                    _add(target, name, body, kind)
    return config


def module() -> Config:
    return load(MODULE_DIR)


def root() -> Config:
    return load(ROOT_DIR)


def tfvars(env: str) -> dict[str, Any]:
    """The values envs/<env>.tfvars gives the root's variables."""
    with (ROOT_DIR / "envs" / f"{env}.tfvars").open() as f:
        return dict(hcl2.load(f, serialization_options=_OPTIONS))


def backend(env: str) -> dict[str, Any]:
    """The partial GCS backend settings of envs/<env>.backend.hcl."""
    with (ROOT_DIR / "envs" / f"{env}.backend.hcl").open() as f:
        return dict(hcl2.load(f, serialization_options=_OPTIONS))


def expr(value: Any) -> str:
    """An attribute's expression as text: `${x}` → `x`; literals as they are."""
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a body."""
    blocks = body.get(name)
    if not isinstance(blocks, list) or len(blocks) != 1:
        raise AssertionError(f"expected exactly one {name} block, found {blocks!r}")
    found: dict[str, Any] = blocks[0]
    return found


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = body.get(name, [])
    assert isinstance(found, list), f"{name} is not a block list"
    return found


def dynamic(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The `dynamic "name"` blocks of a body."""
    return [d[name] for d in body.get("dynamic", []) if name in d]


WAGATE_ENV_KEY = re.compile(r"\b(WAGATE_[A-Z0-9_]+)\s*=")
