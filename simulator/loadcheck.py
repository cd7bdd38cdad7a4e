"""Load check (not a test): link and connect many devices, push messages through them, and print
devices connected, messages/s and the simulator's memory.

    python -m simulator.loadcheck [--devices 1000] [--messages 50000] [--window 16] [--url URL]

Without --url it starts its own simulator subprocess on a free loopback port and stops it at
the end. Devices speak the protocol bare (simulator.testkit.DeviceClient): one frame per send,
acks counted as they arrive, every receipt counted too. Everything stays on loopback and every
loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil

from simulator.testkit import ControlClient, DeviceClient

LOCALHOST = "127.0.0.1"


@dataclass
class Tally:
    """Counts over every device; `until(goal)` returns once the goal holds."""

    connected: int = 0
    receipts: int = 0
    _goal: Callable[[Tally], bool] | None = None
    _reached: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        if self._goal is not None and self._goal(self):
            self._reached.set()

    async def until(self, goal: Callable[[Tally], bool]) -> None:
        self._goal = goal
        self._reached.clear()
        self.changed()
        await self._reached.wait()


@dataclass
class Pump:
    """One device's share of the load: `total` sends, at most `window` unacknowledged."""

    total: int
    window: int
    recipients: list[str]
    tally: Tally
    sent: int = 0
    acked: int = 0
    nacked: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == "ack":
            self.acked += 1
            self.wake.set()
        elif kind == "receipt":
            self.tally.receipts += len(frame.get("ids", ()))
            self.tally.changed()
        elif kind == "nack":
            self.nacked += 1
            self.wake.set()
        elif kind == "connected":
            self.tally.connected += 1
            self.tally.changed()

    async def run(self, client: DeviceClient, name: str) -> None:
        while self.acked + self.nacked < self.total:
            while self.sent < self.total and self.sent - self.acked - self.nacked < self.window:
                to = self.recipients[self.sent % len(self.recipients)]
                await client.send(f"3EB0{name}{self.sent:06d}", to, {"body": "load"})
                self.sent += 1
            self.wake.clear()
            await self.wake.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _own_simulator() -> Iterator[tuple[str, int]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", f"--host={LOCALHOST}", f"--port={port}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the "listening" banner
        yield f"http://{LOCALHOST}:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


async def _connect(
    url: str, http: aiohttp.ClientSession, creds: dict[str, Any], pump: Pump
) -> DeviceClient:
    client = DeviceClient(url, http, on_frame=pump.on_frame)
    await client.open(creds)
    return client


async def check(url: str, pid: int | None, devices: int, messages: int, window: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        control = ControlClient(url, http)
        await control.reset()
        await control.config(receipt_delay_ms=200, read_delay_ms=600, key_update_every=0)

        async def rss() -> int:
            if pid is not None:
                return int(psutil.Process(pid).memory_info().rss)
            return int((await control.stats())["rss_bytes"])

        rss_start = await rss()
        started = time.monotonic()
        gate = asyncio.Semaphore(50)

        async def link(i: int) -> dict[str, Any]:
            async with gate:
                return (await control.link(f"+1555{i:07d}"))[1]

        all_creds = await asyncio.gather(*(link(i) for i in range(devices)))
        linked_s = time.monotonic() - started

        recipients = [f"+1666{i:07d}" for i in range(100)]
        per_device = messages // devices
        tally = Tally()
        pumps = [Pump(per_device, window, recipients, tally) for _ in range(devices)]
        started = time.monotonic()
        clients = await asyncio.gather(
            *(_connect(url, http, c, p) for c, p in zip(all_creds, pumps, strict=True))
        )
        async with asyncio.timeout(60):
            await tally.until(lambda t: t.connected >= devices)
        connect_s = time.monotonic() - started
        stats = await control.stats()
        await asyncio.sleep(1.0)
        rss_idle = await rss()
        print(f"devices linked:    {devices} in {linked_s:.1f}s")
        print(f"devices connected: {stats['devices_connected']} in {connect_s:.1f}s")
        print(
            f"simulator RSS:     {_mib(rss_start)} empty, {_mib(rss_idle)} with "
            f"{devices} connected ({(rss_idle - rss_start) / devices / 1024:.1f} KiB/device)"
        )

        started = time.monotonic()
        async with asyncio.timeout(300):
            await asyncio.gather(
                *(
                    p.run(cl, f"{i:04d}")
                    for i, (p, cl) in enumerate(zip(pumps, clients, strict=True))
                )
            )
        elapsed = time.monotonic() - started
        total = per_device * devices
        acked = sum(p.acked for p in pumps)
        nacked = sum(p.nacked for p in pumps)
        rss_loaded = await rss()
        print(f"messages acked:    {acked} of {total} ({nacked} refused) in {elapsed:.1f}s")
        print(f"throughput:        {acked / elapsed:,.0f} msgs/s (window {window} per device)")

        async with asyncio.timeout(30):  # delivery + read receipts for every message
            await tally.until(lambda t: t.receipts >= 2 * acked)
        print(f"receipts:          {tally.receipts} (delivered + read)")
        received = 0
        for recipient in recipients:
            received += len(await control.received(recipient))
        counters = (await control.stats())["counters"]
        print(f"recipients got:    {received} messages, {counters.get('duplicates', 0)} duplicates")
        print(f"simulator RSS:     {_mib(rss_loaded)} after the load")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"loadcheck RSS:     {_mib(own)} (max)")
        for client in clients:
            await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator.loadcheck", description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=16, help="unacked sends per device")
    parser.add_argument("--url", help="an already running simulator (default: start one)")
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.url:
        asyncio.run(check(args.url, None, args.devices, args.messages, args.window))
        return
    with _own_simulator() as (url, pid):
        asyncio.run(check(url, pid, args.devices, args.messages, args.window))


if __name__ == "__main__":
    main()
