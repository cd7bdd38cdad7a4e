"""runner/Dockerfile: read statically everywhere, built only where a Docker engine answers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tests.infra.terraform import ROOT

DOCKERFILE = ROOT / "runner" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions, continuation lines joined, comments and directives dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            args[name] = default
    return args


def base_images(instructions: list[Instruction]) -> list[str]:
    args = global_args(instructions)
    images = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            image = instruction.args.split()[0]
            images.append(
                re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)
            )
    return images


INSTRUCTIONS = parse(DOCKERFILE.read_text())
FINAL = stages(INSTRUCTIONS)[-1]


def test_the_image_runs_python_m_runner() -> None:
    (cmd,) = [i for i in FINAL if i.keyword == "CMD"]
    assert json.loads(cmd.args) == ["python", "-m", "runner"]  # exec form: SIGTERM reaches Python
    assert not [i for i in FINAL if i.keyword == "ENTRYPOINT"]


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [i.args for i in FINAL if i.keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The user exists in the final stage (numeric ids are created with useradd).
    created = " ".join(i.args for i in FINAL if i.keyword == "RUN")
    assert (
        re.search(rf"useradd\b.*--uid {re.escape(user)}\b", created) or f"useradd {user}" in created
    )


def test_every_base_image_is_pinned() -> None:
    images = base_images(INSTRUCTIONS)
    assert len(images) >= 2, "expected a multi-stage build"
    for image in images:
        pinned = "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[\w.-]*$", image)
        assert pinned, f"{image} is not pinned to a patch version or a digest"
        assert not image.endswith(":latest")
    assert images[0].startswith("python:3.11."), (
        "the functions run python311; the runner must match"
    )


def test_dependencies_come_from_the_lock_without_dev_tools() -> None:
    build = " ".join(i.args for i in stages(INSTRUCTIONS)[0])
    assert "runtime_requirements.py" in build and "requirements.lock" in build
    assert "--no-deps" in build, "pip must install exactly the locked closure"
    final_text = " ".join(f"{i.keyword} {i.args}" for i in FINAL)
    assert "pip install" not in final_text, "the final stage installs nothing itself"
    assert "COPY --from=build /opt/venv" in final_text


def test_what_the_dockerfile_copies_is_in_the_build_context() -> None:
    """Every COPY source exists and the allow-list of .dockerignore lets it through."""
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, ".dockerignore should allow-list the context"
    for instruction in INSTRUCTIONS:
        if instruction.keyword != "COPY" or instruction.args.startswith("--from"):
            continue
        sources = instruction.args.split()[:-1]
        for source in (s.rstrip("/") for s in sources if not s.startswith("--")):
            assert (ROOT / source).exists(), source
            assert source in allowed or any(source.startswith(a + "/") for a in allowed), source


def test_the_final_stage_has_what_the_real_engine_loads() -> None:
    """neonize imports python-magic, which needs libmagic at import time; the Go library itself
    comes inside the neonize wheel from the lock (test_dependencies_come_from_the_lock…)."""
    final_runs = " ".join(i.args for i in FINAL if i.keyword == "RUN")
    assert re.search(r"apt-get install\b.*\blibmagic1\b", final_runs)
    assert "rm -rf /var/lib/apt/lists" in final_runs, "keep the apt lists out of the image"


def test_the_final_stage_has_node_and_the_locked_packages_for_baileys() -> None:
    """The Baileys engine's workers: Node 20 and `npm ci` of package-lock.json (no install
    scripts), copied into /app where runner/engines/baileys/host.mjs resolves them."""
    (node_stage,) = [s for s in stages(INSTRUCTIONS) if s[0].args.startswith("node:20.")]
    runs = " ".join(i.args for i in node_stage if i.keyword == "RUN")
    copies = " ".join(i.args for i in node_stage if i.keyword == "COPY")
    assert "npm ci" in runs and "--ignore-scripts" in runs and "--omit=dev" in runs
    assert "package-lock.json" in copies
    final_copies = [i.args for i in FINAL if i.keyword == "COPY"]
    assert "--from=node /usr/local/bin/node /usr/local/bin/node" in final_copies
    assert "--from=node /app/node_modules /app/node_modules" in final_copies


def _docker_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI on this machine"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "docker info failed: no Docker engine is reachable here"
    return None


DOCKER_UNAVAILABLE = _docker_unavailable()


@pytest.mark.skipif(
    DOCKER_UNAVAILABLE is not None, reason=f"cannot build here: {DOCKER_UNAVAILABLE}"
)
def test_the_image_builds_and_starts_python_m_runner() -> None:
    tag = "wagate-runner:test"
    build = subprocess.run(
        ["docker", "build", "--file", str(DOCKERFILE), "--tag", tag, str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    inspect = subprocess.run(
        ["docker", "image", "inspect", tag, "--format", "{{json .Config}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(inspect.stdout)
    assert config["Cmd"] == ["python", "-m", "runner"]
    assert config["User"] not in ("", "root", "0")
    # The runner refuses to start without a key ring: proof that the code and its
    # dependencies import and run inside the image.
    run = subprocess.run(
        ["docker", "run", "--rm", tag],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode != 0 and "WAGATE_BACKUP_KEYS is required" in run.stderr + run.stdout
    # The real engine's library loads inside the image with no network at all: nothing is
    # downloaded at run time, and its host process starts as the unprivileged user.
    engine = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            tag,
            "python",
            "-c",
            "import neonize._binder as b, neonize.download as d; "
            "assert b.gocode.GetVersion().decode() == d.__GONEONIZE_VERSION__; "
            "import runner.engines.whatsmeow.host; print('engine ok')",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert engine.returncode == 0 and "engine ok" in engine.stdout, engine.stderr[-2000:]
    # The Baileys worker starts and answers, offline, as the unprivileged user.
    worker = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            tag,
            "node",
            "runner/engines/baileys/host.mjs",
        ],
        input='{"op":"ping","req":1}\n',
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert '"re":1,"ok":true' in worker.stdout, worker.stderr[-2000:]
