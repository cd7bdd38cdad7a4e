"""`wagate dev up` hands its environment to other shells through `.stack/env`."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from wagate_cli.dev import write_env_file


def test_the_env_file_is_private_and_sources_back_to_the_same_values(tmp_path: Path) -> None:
    env = {"WAGATE_ADMIN_KEY": "wg_admin_a$b'c \"d", "WAGATE_API_URL": "http://127.0.0.1:1"}
    path = tmp_path / ".stack" / "env"
    write_env_file(path, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = subprocess.run(
        [
            "bash",
            "-c",
            f'source "{path}" && printf "%s\\n%s" "$WAGATE_ADMIN_KEY" "$WAGATE_API_URL"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.split("\n") == [env["WAGATE_ADMIN_KEY"], env["WAGATE_API_URL"]]
