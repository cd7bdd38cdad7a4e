"""A TCP proxy in front of one local service whose link a test can cut, to stage an outage of
a dependency without losing its data (the Firestore emulator keeps everything in memory, so
stopping it would lose every document).

`cut("refuse")` closes every connection and refuses new ones at once (what a dead host with a
live network looks like); `cut("blackhole")` keeps connections open but passes nothing either
way (a partition: callers only learn from their own timeouts). `restore()` closes whatever the
cut left behind, so clients reconnect to a healthy link.

Hand-written: the asyncio stream API makes it a few dozen lines, and the fault-injection
proxies that exist (toxiproxy and the like) are separate server programs this repository
does not otherwise need.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, Literal

Mode = Literal["open", "refuse", "blackhole"]
CHUNK = 64 * 1024


class FaultProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            self.port = int(s.getsockname()[1])
        self.mode: Mode = "open"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    # ------------------------------------------------------------ control (any thread)

    def start(self) -> None:
        if self._thread.is_alive():
            return
        self._thread.start()
        self._call(self._listen())

    def cut(self, mode: Literal["refuse", "blackhole"]) -> None:
        self._call(self._set(mode))

    def restore(self) -> None:
        self._call(self._set("open"))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_all(server=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(timeout=10)

    # ------------------------------------------------------------ the loop's side

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def _set(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if mode == "refuse" or (mode == "open" and previous == "blackhole"):
            await self._close_all(server=False)

    async def _close_all(self, *, server: bool) -> None:
        if server and self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.close()
            return
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.mode == "open":
                upstream = await asyncio.open_connection(self.host, self.target_port)
                self._writers.add(upstream[1])
                await asyncio.gather(
                    self._pump(reader, upstream[1]), self._pump(upstream[0], writer)
                )
            else:  # blackhole: swallow whatever arrives, answer nothing
                while await reader.read(CHUNK):
                    pass
        except OSError:
            pass
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(CHUNK):
                if self.mode == "blackhole":
                    continue  # the link is cut: bytes vanish
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.close()
