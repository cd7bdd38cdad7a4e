"""POST /queries: the api's synchronous questions for a session's live socket — number checks and
groups (docs/messaging.md, "Groups and number checks"). Only this runner holds the socket, so
the api asks it directly (authenticated like the task endpoints) instead of through a queue.

Answers: 200 `{"data": …}`; 503 + Retry-After while this runner is draining or not the lease
holder, or the session's socket is not connected (`session_not_connected`); 501 when the engine
cannot answer (`not_supported`); the engine's refusals (404 unknown group, 403 not an admin).
Each question is bounded by QUERY_TIMEOUT_S, below the api's own wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from runner.engines import directory
from runner.lease import LeaseKeeper
from runner.shard import Shard
from wagate.contracts.directory import GroupView, RunnerQuery
from wagate.errors import (
    DependencyUnavailable,
    NotImplementedByServer,
    ValidationFailed,
    WagateError,
)
from wagate.http import render_error
from wagate.logs import get_logger
from wagate.ports import DirectoryQueries

log = get_logger("wagate.runner.queries")
QUERY_TIMEOUT_S = 15.0  # the api waits QUERY_WAIT_S (wagate/adapters/runner_client.py) > this


class QueryEndpoint:
    def __init__(
        self, shard: Shard, lease: LeaseKeeper, authorize: Callable[[web.Request], None]
    ) -> None:
        self.shard = shard
        self.lease = lease
        self.authorize = authorize

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/queries", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        try:
            self.authorize(request)
            try:
                query = RunnerQuery.model_validate_json(await request.read())
            except ValidationError as e:
                raise ValidationFailed(
                    f"invalid query: {e.errors()[0]['msg']}", field="body"
                ) from None
            data = await self.answer(query)
        except WagateError as e:
            status, body, headers = render_error(e, request.headers.get("X-Request-Id", "-"))
            return web.Response(status=status, body=body, headers=headers)
        return web.json_response({"data": data})

    def _socket(self, session_id: str) -> DirectoryQueries:
        if self.shard.draining or not self.lease.held:
            raise DependencyUnavailable(
                "this runner does not serve the shard right now (draining or taking over)",
                code="runner_not_ready",
                retry_after=2,
            )
        supervisor = self.shard.supervisors.get(session_id)
        conn = supervisor.live_connection if supervisor is not None else None
        if conn is None:
            raise directory.not_connected()
        if not isinstance(conn, DirectoryQueries):
            raise NotImplementedByServer(
                f"the {self.shard.ctx.settings.engine} engine does not answer number checks or "
                "group queries (docs/engines.md)",
                code="not_supported",
            )
        return conn

    async def answer(self, query: RunnerQuery) -> Any:
        conn = self._socket(query.session_id)
        t = QUERY_TIMEOUT_S
        log.info("query", session_id=query.session_id, q=query.q)
        match query.q:
            case "check_numbers":
                return [asdict(s) for s in await conn.check_numbers(query.numbers, timeout=t)]
            case "groups":
                groups = await conn.groups(timeout=t)
                return [GroupView.of(g, members=False).model_dump(mode="json") for g in groups]
            case "group":
                info = await conn.group(self._group(query), timeout=t)
                return GroupView.of(info).model_dump(mode="json")
            case "create_group":
                subject = query.subject or ""
                info = await conn.create_group(subject, query.participants, timeout=t)
                return GroupView.of(info).model_dump(mode="json")
            case "update_participants":
                if query.action is None:
                    raise ValidationFailed("action is required", field="action")
                results = await conn.update_participants(
                    self._group(query), query.action, query.participants, timeout=t
                )
                return [asdict(r) for r in results]
            case "invite_code":
                return await conn.invite_code(self._group(query), timeout=t)

    @staticmethod
    def _group(query: RunnerQuery) -> str:
        if not query.group or not query.group.endswith("@g.us"):
            raise ValidationFailed("group must be a …@g.us JID", field="group")
        return query.group
