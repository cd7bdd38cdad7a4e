"""The whatsmeow connection's directory queries (wagate.ports.DirectoryQueries): one `query` op
to the session's host process per question (host side: host_directory.py), answered in the
JSON shape the other engines share (runner/engines/directory.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runner.engines import directory
from wagate.domain.directory import GroupInfo, NumberStatus, ParticipantAction, ParticipantResult
from wagate.errors import DependencyUnavailable, TransientSendError


class WhatsmeowDirectory:
    """Mixed into WhatsmeowConnection, whose `_request`, `_connected` and `_closed` it uses."""

    _connected: bool
    _closed: bool

    if TYPE_CHECKING:

        async def _request(
            self, frame: dict[str, Any], timeout: float, *, wa_id: str | None = None
        ) -> dict[str, Any]: ...

    async def _ask(self, q: str, timeout: float, **args: Any) -> Any:
        if self._closed or not self._connected:
            raise directory.not_connected()
        try:
            reply = await self._request({"op": "query", "q": q, **args}, timeout)
        except TimeoutError:
            raise DependencyUnavailable(
                f"WhatsApp did not answer {q} within {timeout:g} s", retry_after=5
            ) from None
        except TransientSendError:  # the host is gone, or its pipe failed
            raise directory.not_connected() from None
        if "refused" in reply:
            refused = reply["refused"] or {}
            raise directory.refusal(str(refused.get("code")), str(refused.get("message", "")))
        return reply.get("data")

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
