"""The real engine's library arrives with `pip install` and never downloads anything at run time.

neonize loads its Go library from the package directory and downloads one from GitHub only if
the file is missing or reports another version than the Python code expects
(neonize/_binder.py: load_goneonize). These tests pin both conditions, and load the library in
a process that cannot reach any network, so a download attempt would fail the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def neonize_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("neonize")
    assert spec is not None and spec.origin is not None, "neonize is not installed"
    return Path(spec.origin).parent


def test_pyproject_and_the_lock_pin_the_same_neonize() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("neonize")], "an extra only"
    (spec,) = [d for d in project["optional-dependencies"]["whatsmeow"] if d.startswith("neonize")]
    pinned = re.match(r"neonize==([\w.]+)", spec)
    assert pinned, "neonize must be pinned exactly: its Go library is part of the wire protocol"
    assert f"neonize=={pinned.group(1)}" in (ROOT / "requirements.lock").read_text().splitlines()


def _closure(*extra: str) -> set[str]:
    script = ROOT / "infra" / "terraform" / "scripts" / "runtime_requirements.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--lock",
            "requirements.lock",
            "--pyproject",
            "pyproject.toml",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("==")[0].lower() for line in out.splitlines() if "==" in line}


def test_the_runner_image_closure_includes_the_library_and_its_imports() -> None:
    """runner/Dockerfile asks for the `whatsmeow` extra; the functions (no extra) never get it."""
    assert {"neonize", "python-magic", "protobuf", "pillow"} <= _closure("--extra", "whatsmeow")
    assert "neonize" not in _closure()


def test_the_installed_wheel_bundles_the_go_library_neonize_expects() -> None:
    from neonize.download import __GONEONIZE_VERSION__
    from neonize.utils.platform import generated_name

    library = neonize_dir() / generated_name()
    assert library.is_file() and library.stat().st_size > 1_000_000
    # The version check neonize makes before it would download a replacement:
    probe = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
        "lib.GetVersion.restype = ctypes.c_char_p; print(lib.GetVersion().decode())"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, str(library)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == __GONEONIZE_VERSION__


def _without_network(argv: list[str]) -> list[str]:
    """argv in a new network namespace (no interface but loopback) where that is allowed."""
    unshare = shutil.which("unshare")
    if unshare is not None:
        trial = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
        if trial.returncode == 0:
            return [unshare, "-rn", *argv]
    return argv


def test_importing_and_loading_the_library_downloads_nothing() -> None:
    closed = "http://127.0.0.1:9"  # even without a namespace, HTTP(S) goes nowhere
    env = {**os.environ, "HTTPS_PROXY": closed, "HTTP_PROXY": closed, "NO_PROXY": ""}
    code = (
        "import neonize._binder as b, neonize.download as d;"
        "assert b.gocode.GetVersion().decode() == d.__GONEONIZE_VERSION__; print('loaded')"
    )
    done = subprocess.run(
        _without_network([sys.executable, "-c", code]),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded" in done.stdout
    assert "download" not in done.stderr.lower()


@pytest.mark.skipif(sys.platform != "linux", reason="the runner image is Linux")
def test_the_library_needs_nothing_but_libc() -> None:
    from neonize.utils.platform import generated_name

    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("no ldd here")
    out = subprocess.run(
        [ldd, str(neonize_dir() / generated_name())], capture_output=True, text=True, check=True
    ).stdout
    libraries = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert libraries <= {
        "linux-vdso.so.1",
        "libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
    }
