"""Test harness for the simulator and the engines that talk to it: start the simulator as a
subprocess on a free loopback port (through the devstack's own Service launcher), run a test's
coroutine with plain asyncio, and read engine events by type."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from devstack.processes import LOCALHOST, Service, free_port
from simulator.testkit import ControlClient, DeviceClient

T = TypeVar("T")
E = TypeVar("E")


def start_simulator(log_dir: Path, *args: str) -> tuple[Service, str]:
    port = free_port()
    url = f"http://{LOCALHOST}:{port}"
    argv = [sys.executable, "-m", "simulator", f"--host={LOCALHOST}", f"--port={port}", *args]
    service = Service("simulator", argv, f"{url}/healthz", log_dir / "simulator.log")
    service.start()
    service.wait_ready()
    return service, url


@pytest.fixture(scope="session")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simulator as a subprocess for a test directory (its conftest imports this)."""
    service, url = start_simulator(tmp_path_factory.mktemp("simulator"))
    try:
        yield url
    finally:
        service.stop()


def run(coro: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    """Run one test body on a fresh event loop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro()

    return asyncio.run(bounded())


@dataclass
class Sim:
    """One test's view of the simulator: a control client and bare device sockets."""

    url: str
    http: aiohttp.ClientSession
    control: ControlClient
    devices: list[DeviceClient] = field(default_factory=list)

    async def device(self, creds: dict[str, Any] | None = None, **options: Any) -> DeviceClient:
        client = DeviceClient(self.url, self.http)
        await client.open(creds, **options)
        self.devices.append(client)
        return client

    async def paired(self, phone: str) -> tuple[DeviceClient, dict[str, Any]]:
        """A device linked by QR, past its pairing frames."""
        client = await self.device()
        qr = await client.expect("qr")
        await self.control.scan(qr["code"], phone)
        creds = (await client.expect("paired"))["creds"]
        await client.expect("connected")
        await client.expect("keys")
        return client, creds

    async def close(self) -> None:
        for client in self.devices:
            await client.close()


def run_sim(url: str, body: Callable[[Sim], Awaitable[None]], timeout: float = 20.0) -> None:
    """Reset the simulator, then run `body` with a fresh Sim."""

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            sim = Sim(url, http, ControlClient(url, http))
            await sim.control.reset()
            try:
                await body(sim)
            finally:
                await sim.close()

    run(main, timeout)


def simulated(
    timeout: float = 20.0,
) -> Callable[[Callable[[Sim], Awaitable[None]]], Callable[[str], None]]:
    """`@simulated() async def test_x(sim)`: the body runs against the session's simulator,
    reset first, on a fresh event loop bounded by `timeout` (what `run_sim` does)."""

    def decorate(body: Callable[[Sim], Awaitable[None]]) -> Callable[[str], None]:
        def test(simulator_url: str) -> None:
            run_sim(simulator_url, body, timeout)

        test.__name__ = getattr(body, "__name__", test.__name__)
        test.__qualname__ = getattr(body, "__qualname__", test.__qualname__)
        test.__module__ = body.__module__
        test.__doc__ = body.__doc__
        return test

    return decorate


class EventTap:
    """Reads an engine connection's events in order; `next(Type)` skips other types (kept in
    `seen`), so a test waits for what it means without caring about interleaving."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self._events = events
        self.seen: list[Any] = []

    async def next(self, kind: type[E], timeout: float = 5.0) -> E:
        async with asyncio.timeout(timeout):
            async for event in self._events:
                self.seen.append(event)
                if isinstance(event, kind):
                    return event
        raise AssertionError(f"the event stream ended before a {kind.__name__}")

    async def until(self, kind: type[E], count: int, timeout: float = 5.0) -> list[E]:
        return [await self.next(kind, timeout) for _ in range(count)]

    async def nothing_for(self, seconds: float) -> list[Any]:
        """Every event that arrives within `seconds` (a test that expects none asserts [])."""
        got: list[Any] = []
        try:
            async with asyncio.timeout(seconds):
                async for event in self._events:
                    got.append(event)
        except TimeoutError:
            pass
        self.seen.extend(got)
        return got
