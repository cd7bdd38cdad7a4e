"""The simulated connection's directory queries (wagate.ports.DirectoryQueries): a `query` frame
per question, answered by one `result` frame with the same id (simulator/PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from runner.engines import directory
from runner.engines.event_stream import new_waiter
from runner.engines.simulated import frames
from wagate.domain.directory import GroupInfo, NumberStatus, ParticipantAction, ParticipantResult
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


class SimulatedDirectory:
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

    async def check_numbers(self, numbers: Sequence[str], *, timeout: float) -> list[NumberStatus]:
        data = await self._ask("check_numbers", timeout, numbers=list(numbers))
        return [directory.number_status(d) for d in data]

    async def groups(self, *, timeout: float) -> list[GroupInfo]:
        return [directory.group_info(d) for d in await self._ask("groups", timeout)]

    async def group(self, jid: str, *, timeout: float) -> GroupInfo:
        return directory.group_info(await self._ask("group", timeout, group=jid))

    async def create_group(
        self, subject: str, participants: Sequence[str], *, timeout: float
    ) -> GroupInfo:
        data = await self._ask(
            "create_group", timeout, subject=subject, participants=list(participants)
        )
        return directory.group_info(data)

    async def update_participants(
        self, jid: str, action: ParticipantAction, participants: Sequence[str], *, timeout: float
    ) -> list[ParticipantResult]:
        data = await self._ask(
            "update_participants",
            timeout,
            group=jid,
            action=action,
            participants=list(participants),
        )
        return directory.participant_results(data)

    async def invite_code(self, jid: str, *, timeout: float) -> str:
        return str(await self._ask("invite_code", timeout, group=jid))
