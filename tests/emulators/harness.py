"""What the Cloud Tasks emulator conformance suite drives and observes: the emulator as a
subprocess (started the way launchers start it, ready when it prints its line), the official
client pointed at it, and a loopback HTTP target that records every dispatch and answers with
scripted statuses and delays."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from devstack.processes import LOCALHOST, REPO_ROOT, free_port

READY_PREFIX = "cloud-tasks-emulator listening on "


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[str]
    url: str
    ready_line: str
    log_path: Path

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_emulator(log_dir: Path, *args: str, ready_timeout: float = 20.0) -> EmulatorProcess:
    port = free_port()
    log_path = log_dir / f"cloud-tasks-emulator-{port}.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators.cloud_tasks",
            f"--host={LOCALHOST}",
            f"--port={port}",
            *args,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    log_file.close()
    line = _read_line(process, process.stdout, ready_timeout)
    if not line.startswith(READY_PREFIX):
        process.kill()
        raise RuntimeError(f"emulator did not become ready ({line!r}); see {log_path}")
    return EmulatorProcess(process, line.removeprefix(READY_PREFIX).strip(), line, log_path)


def _read_line(process: subprocess.Popen[str], stream: IO[str] | None, timeout: float) -> str:
    assert stream is not None
    readable, _, _ = select.select([stream], [], [], timeout)
    if not readable:
        process.kill()
        raise RuntimeError(f"emulator printed nothing within {timeout} s")
    return stream.readline()


def make_client(url: str) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=url),
    )


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class Step:
    """How the target answers one request on a path: status after a delay."""

    status: int = 200
    delay: float = 0.0


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received: float  # time.time()
    received_mono: float  # time.monotonic()


@dataclass
class _PathState:
    script: list[Step] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0


class Target:
    """A loopback HTTP server standing in for a task handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, _PathState] = defaultdict(_PathState)
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                target._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

        self._server = Server((LOCALHOST, 0), Handler)
        self.base_url = f"http://{LOCALHOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return self.base_url + path

    def script(self, path: str, steps: Iterable[Step]) -> None:
        """Answer the next requests on ``path`` with these steps, then 200 at once."""
        with self._lock:
            self._paths[path].script = list(steps)

    def hits(self, path: str) -> list[Hit]:
        with self._lock:
            return list(self._paths[path].hits)

    def max_inflight(self, path: str) -> int:
        with self._lock:
            return self._paths[path].max_inflight

    def wait_for_hits(self, path: str, count: int, timeout: float = 10.0) -> list[Hit]:
        wait_until(lambda: len(self.hits(path)) >= count, timeout, f"{count} hits on {path}")
        return self.hits(path)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        path = request.path
        hit = Hit(
            method=request.command,
            path=path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            received=time.time(),
            received_mono=time.monotonic(),
        )
        with self._lock:
            state = self._paths[path]
            state.hits.append(hit)
            step = state.script.pop(0) if state.script else Step()
            state.inflight += 1
            state.max_inflight = max(state.max_inflight, state.inflight)
        try:
            if step.delay:
                time.sleep(step.delay)
            request.send_response(step.status)
            request.send_header("Content-Length", "0")
            request.end_headers()
        except OSError:
            pass  # the emulator gave up on this attempt (dispatch deadline) and hung up
        finally:
            with self._lock:
                state.inflight -= 1


# --------------------------------------------------------------------------- protos


def duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def http_task(
    url: str,
    *,
    queue: str | None = None,
    task_id: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    method: tasks_v2.HttpMethod = tasks_v2.HttpMethod.POST,
    schedule_at: float | None = None,
    deadline: float | None = None,
    oidc: tasks_v2.OidcToken | None = None,
) -> tasks_v2.Task:
    """An HTTP-target task; named when ``queue`` and ``task_id`` are given."""
    request = tasks_v2.HttpRequest(url=url, http_method=method, headers=headers or {}, body=body)
    if oidc is not None:
        request.oidc_token = oidc
    task = tasks_v2.Task(http_request=request)
    if task_id is not None:
        assert queue is not None
        task.name = f"{queue}/tasks/{task_id}"
    if schedule_at is not None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(int(schedule_at * 1e9))
        task.schedule_time = stamp
    if deadline is not None:
        task.dispatch_deadline = duration(deadline)
    return task
