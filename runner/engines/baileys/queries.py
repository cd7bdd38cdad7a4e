"""The Baileys connection's directory queries (wagate.ports.DirectoryQueries): one `query` op on
the session's worker per question (host side: queries.mjs), answered in the JSON shape the
simulator shares (runner/engines/directory.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.engines import directory
from wagate.errors import TransientSendError

if TYPE_CHECKING:
    from runner.engines.baileys.engine import Worker

WORKER_SLACK_S = 5.0  # the worker's own reply comes a little after the library's timeout


class BaileysDirectory(directory.AskedDirectory):
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
