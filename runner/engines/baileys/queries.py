"""The Baileys connection's directory queries (wagate.ports.DirectoryQueries): one `query` op on
the session's worker per question (host side: queries.mjs), answered in the JSON shape the
simulator shares (runner/engines/directory.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.engines import directory
from wagate.domain.directory import GroupInfo, NumberStatus, ParticipantAction, ParticipantResult
from wagate.errors import TransientSendError

if TYPE_CHECKING:
    from runner.engines.baileys.engine import Worker

WORKER_SLACK_S = 5.0  # the worker's own reply comes a little after the library's timeout


class BaileysDirectory:
    """Mixed into BaileysConnection, whose worker, connection id and state it uses."""

    cid: str
    _worker: Worker | None
    _connected: bool
    _closed: bool

    async def _ask(self, q: str, timeout: float, **args: Any) -> Any:
        worker = self._worker
        if self._closed or not self._connected or worker is None:
            raise directory.not_connected()
        try:
            reply = await worker.request(
                {"op": "query", "sid": self.cid, "q": q, **args}, timeout=timeout + WORKER_SLACK_S
            )
        except TransientSendError as e:  # the worker is gone or did not answer
            raise (
                directory.not_connected()
                if not worker.alive
                else directory.refusal("failed", e.message)
            ) from None
        if reply.get("ok"):
            return reply.get("data")
        error = reply.get("error") or {}
        raise directory.refusal(str(error.get("code")), str(error.get("message", "")))

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
