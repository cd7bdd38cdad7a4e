"""Helpers for tests that talk to a served process over a real socket."""

from __future__ import annotations

import socket
from pathlib import Path

from devstack.processes import LOCALHOST
from devstack.stack import Stack, StackConfig


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send a malformed header) and read the
    whole answer: status, headers (lower-cased names) and body."""
    with socket.create_connection((LOCALHOST, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def function_launcher(emulators: Stack, project: str, root: Path) -> Stack:
    """A stack launcher for function processes (as `./dev up` starts them) on the shared
    emulators, in the test's own project."""
    emulators.provision_project(project)
    launcher = Stack(
        StackConfig(
            root=root,
            project=project,
            extra_env={"WAGATE_TASKS_ENDPOINT": emulators.url["tasks"]},
        )
    )
    for name in ("firestore", "gcs", "tasks"):
        launcher.ports[name] = emulators.ports[name]
    launcher.admin_key = emulators.admin_key
    return launcher
