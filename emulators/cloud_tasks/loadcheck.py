"""How many dispatches per second the emulator sustains: a throughput check, not a test.

``python -m emulators.cloud_tasks.loadcheck [--tasks 20000] [--queues 16]`` starts the emulator
(or uses ``--emulator URL``), creates paused queues at the real per-queue maximum of 500
dispatches/s, enqueues N tasks aimed at a fast local target, resumes the queues and
reports how fast the tasks were created and how fast they arrived at the target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp

LOCALHOST = "127.0.0.1"
READY_PREFIX = "cloud-tasks-emulator listening on "


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


class Arrivals(asyncio.Protocol):
    """The target: a bare HTTP/1.1 keep-alive responder that answers every request 200 and
    tallies when the first and the n-th arrived. Bare so the check measures the emulator,
    not the target (an aiohttp server costs several times more CPU per request)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.all_in = asyncio.Event()

    def connection(self) -> asyncio.Protocol:
        return _Connection(self)

    def arrived(self) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        if self.count >= self.expected:
            self.all_in.set()


class _Connection(asyncio.Protocol):
    _OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self._buffer[:head_end].lower()
            marker = head.find(b"content-length:")
            length = 0
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else None])
            total = head_end + 4 + length
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            self._arrivals.arrived()
            assert self._transport is not None
            self._transport.write(self._OK)


@contextlib.asynccontextmanager
async def running_target(arrivals: Arrivals) -> AsyncIterator[str]:
    port = _free_port()
    server = await asyncio.get_running_loop().create_server(
        arrivals.connection, LOCALHOST, port, backlog=4096
    )
    try:
        yield f"http://{LOCALHOST}:{port}/task"
    finally:
        server.close()


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU time a process has used so far (Linux /proc), to tell cost from contention."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def running_emulator(url: str | None) -> AsyncIterator[tuple[str, int | None]]:
    if url:
        yield url, None
        return
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulators.cloud_tasks",
        f"--host={LOCALHOST}",
        f"--port={port}",
        "--log-level=WARNING",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line.removeprefix(READY_PREFIX).strip(), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, body: Mapping[str, object]
) -> None:
    async with http.request(method, url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{method} {url}: {response.status} {await response.text()}")
        await response.read()


async def check(
    tasks: int, queues: int, concurrent: int, emulator_url: str | None, parallel: int
) -> None:
    arrivals = Arrivals(tasks)
    async with (
        running_target(arrivals) as target_url,
        running_emulator(emulator_url) as (api, pid),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel)) as http,
    ):
        parent = f"projects/loadcheck/locations/local/queues/run-{uuid.uuid4().hex[:8]}"
        names = [f"{parent}-{i}" for i in range(queues)]
        for name in names:
            queue = {
                "name": name,
                "rateLimits": {
                    "maxDispatchesPerSecond": 500,
                    "maxConcurrentDispatches": concurrent,
                },
            }
            await _call(http, "POST", f"{api}/v2/projects/loadcheck/locations/local/queues", queue)
            await _call(http, "POST", f"{api}/v2/{name}:pause", {})

        pending = iter(range(tasks))

        async def creator() -> None:
            for i in pending:
                task = {"httpRequest": {"url": target_url, "body": "e30="}}
                await _call(http, "POST", f"{api}/v2/{names[i % queues]}/tasks", {"task": task})

        cpu_start = _cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(parallel)))
        created_s = time.perf_counter() - started
        cpu_created = _cpu_seconds(pid)
        print(f"created {tasks} tasks in {created_s:.2f} s: {tasks / created_s:,.0f} creates/s")

        resumed = time.perf_counter()
        await asyncio.gather(*(_call(http, "POST", f"{api}/v2/{n}:resume", {}) for n in names))
        try:
            async with asyncio.timeout(max(60.0, tasks / 200)):
                await arrivals.all_in.wait()
        except TimeoutError:
            print(f"only {arrivals.count} of {tasks} dispatches arrived")
            raise
        span = arrivals.last - resumed
        cap = queues * 500
        print(
            f"dispatched {tasks} tasks over {queues} queues (rate cap {cap:,}/s) in "
            f"{span:.2f} s: {tasks / span:,.0f} dispatches/s"
        )
        await asyncio.sleep(0.2)  # let the emulator settle its last attempts
        cpu_end = _cpu_seconds(pid)
        if cpu_start is not None and cpu_created is not None and cpu_end is not None:
            per_create = (cpu_created - cpu_start) / tasks
            per_dispatch = (cpu_end - cpu_created) / tasks
            print(
                f"emulator CPU: {per_create * 1e6:.0f} us per create, "
                f"{per_dispatch * 1e6:.0f} us per dispatch "
                f"(~{1 / per_dispatch:,.0f} dispatches/s per core)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.cloud_tasks.loadcheck")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--queues", type=int, default=16)
    parser.add_argument(
        "--concurrent", type=int, default=50, help="maxConcurrentDispatches of each queue"
    )
    parser.add_argument("--parallel", type=int, default=64, help="concurrent CreateTask calls")
    parser.add_argument("--emulator", help="URL of a running emulator (default: start one)")
    args = parser.parse_args()
    asyncio.run(check(args.tasks, args.queues, args.concurrent, args.emulator, args.parallel))


if __name__ == "__main__":
    main()
