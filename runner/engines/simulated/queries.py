"""The simulated connection's directory queries (wagate.ports.DirectoryQueries): a `query` frame
per question, answered by one `result` frame with the same id (simulator/PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import aiohttp

from runner.engines import directory
from runner.engines.event_stream import new_waiter
from runner.engines.simulated import frames
from wagate.domain.events import EngineEvent
from wagate.errors import DependencyUnavailable


class QueryChannel:
    """The queries of one connection that wait for their result frame."""

    __slots__ = ("_ids", "_waiting")

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def ask(
        self, ws: aiohttp.ClientWebSocketResponse | None, q: str, timeout: float, **args: Any
    ) -> Any:
        if ws is None or ws.closed:
            raise directory.not_connected()
        qid = next(self._ids)
        future: asyncio.Future[Any] = new_waiter()
        self._waiting[qid] = future
        try:
            await ws.send_str(frames.encode({"t": "query", "id": qid, "q": q, **args}))
            async with asyncio.timeout(timeout):
                return await future
        except (ConnectionError, aiohttp.ClientError) as e:
            raise directory.not_connected() from e
        except TimeoutError:
            raise DependencyUnavailable(
                f"WhatsApp did not answer {q} within {timeout:g} s", retry_after=5
            ) from None
        finally:
            self._waiting.pop(qid, None)

    def answer(self, frame: dict[str, Any]) -> None:
        future = self._waiting.get(frame.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if frame.get("ok"):
            future.set_result(frame.get("data"))
        else:
            code, message = str(frame.get("code")), str(frame.get("message", ""))
            future.set_exception(directory.refusal(code, message))

    def fail_all(self) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(directory.not_connected())


class SimulatedDirectory(directory.AskedDirectory):
    """Mixed into SimulatedConnection, whose `_ws`, `_connected` and `_queries` it uses."""

    __slots__ = ()
    _ws: aiohttp.ClientWebSocketResponse | None
    _connected: bool
    _queries: QueryChannel

    if TYPE_CHECKING:

        def _emit(self, event: EngineEvent, seq: int = 0) -> None: ...

    def _on_directory_frame(self, frame: dict[str, Any], seq: int) -> None:
        """A query's result, or a group notice (a deliverable frame: `seq`)."""
        if frame.get("t") == "result":
            self._queries.answer(frame)
        elif (notice := directory.participants_event(frame)) is not None:
            self._emit(notice, seq)

    async def _ask(self, q: str, timeout: float, **args: Any) -> Any:
        if not self._connected:
            raise directory.not_connected()
        return await self._queries.ask(self._ws, q, timeout, **args)
