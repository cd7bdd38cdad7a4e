"""The whatsmeow connection's directory queries (wagate.ports.DirectoryQueries): one `query` op
to the session's host process per question (host side: host_directory.py), answered in the
JSON shape the other engines share (runner/engines/directory.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.engines import directory
from wagate.errors import DependencyUnavailable, TransientSendError


class WhatsmeowDirectory(directory.AskedDirectory):
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
