"""One local service as a child process: started in its own process group (so stopping it stops
its children too: the Firestore emulator's Java process outlives its gcloud parent otherwise),
ready when its health URL answers, logging to a file. Also the loopback ports they listen on."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOCALHOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]


_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def _ports_below_ephemeral() -> range:
    """The ports the kernel never hands out for a bind to port 0: below its ephemeral range."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10000, max(low, 20000))


_PORTS = _ports_below_ephemeral()
_next_port = random.Random(os.getpid()).randrange(len(_PORTS))


def free_port() -> int:
    """A loopback port free now that this process has not handed out before, from below the
    kernel's ephemeral range. A port the kernel chose (a bind to port 0) is free only until
    the next process binds to port 0: a Java emulator that opened an internal socket took the
    port handed out for the api before the api started (seen in a bench run: the api's health
    check answered by a gRPC server). Ports below that range are never chosen by the kernel;
    each process starts at its own offset so that two stacks rarely probe the same ports."""
    global _next_port
    with _PORTS_LOCK:
        for _ in range(len(_PORTS)):
            port = _PORTS[_next_port % len(_PORTS)]
            _next_port += 1
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((LOCALHOST, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    raise StackError(f"no free loopback port in {_PORTS.start}-{_PORTS.stop - 1}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return False


class StackError(RuntimeError):
    pass


@dataclass
class Service:
    """One child process of the stack."""

    name: str
    argv: Sequence[str]
    health_url: str | None  # None: ready once started (a process that serves nothing)
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=REPO_ROOT,
            start_new_session=True,  # its own process group: stop() reaches grandchildren
        )
        log.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with {self.process.returncode}; "
                    f"last log lines:\n{self.tail()}"
                )
            if self.health_url is None or http_ok(self.health_url):
                return
            time.sleep(0.1)
        raise StackError(f"{self.name} not ready after {self.ready_timeout_s}s:\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        # The group may still hold children (the Java emulator under gcloud).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
