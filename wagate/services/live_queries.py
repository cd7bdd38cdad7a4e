"""Questions for a session's live WhatsApp socket, asked of the runner that holds it
(ports.RunnerLink): the session is read fresh first, so a session that cannot answer is told
apart from one that cannot answer *now* (docs/messaging.md, "Groups and number checks")."""

from __future__ import annotations

from typing import Any

from wagate.contracts.directory import RunnerQuery
from wagate.domain.sessions import SessionState
from wagate.errors import Conflict, DependencyUnavailable
from wagate.ports import RunnerLink
from wagate.services.directory import SessionDirectory

# States that end only by the user's doing (pair again, start again): retrying cannot help.
NEEDS_THE_USER = frozenset(
    {
        SessionState.CREATED,
        SessionState.PAIRING,
        SessionState.LOGGED_OUT,
        SessionState.FAILED,
        SessionState.STOPPED,
    }
)
RECONNECTING_RETRY_S = 5


class LiveQueries:
    def __init__(self, directory: SessionDirectory, runner: RunnerLink) -> None:
        self._directory = directory
        self._runner = runner

    def ask(self, tenant_id: str, query: RunnerQuery) -> Any:
        """The runner's answer. 404 for another tenant's session; 409 `session_not_connected`
        when the session is not paired or was stopped; 503 + Retry-After while it connects."""
        doc = self._directory.fresh(tenant_id, query.session_id)
        if doc.state in NEEDS_THE_USER:
            raise Conflict(
                f"the session is {doc.state.value}: it answers once it is paired and connected",
                code="session_not_connected",
                field="session_id",
            )
        if doc.state is not SessionState.CONNECTED:
            raise DependencyUnavailable(
                f"the session is {doc.state.value}; try again in a few seconds",
                code="session_not_connected",
                retry_after=RECONNECTING_RETRY_S,
            )
        return self._runner.ask(doc.shard, query)
