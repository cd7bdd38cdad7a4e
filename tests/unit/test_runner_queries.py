"""The runner's POST /queries over real HTTP (aiohttp's test server), with stand-ins for the shard
and its sessions: the internal secret is required, a runner that does not serve the shard or a
session without a live socket is 503 with Retry-After, an engine without directory queries is
501, and an answer is the engine's, as JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from runner.queries import QueryEndpoint
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.domain.directory import GroupInfo, GroupMember, NumberStatus
from wagate.errors import Unauthenticated

SECRET = "s3cret"


class Socket:
    """A connection that answers directory queries (the engines' are in the contract suite)."""

    async def check_numbers(self, numbers: Sequence[str], *, timeout: float) -> list[NumberStatus]:
        return [NumberStatus(n, True, f"{n}@s.whatsapp.net", None) for n in numbers]

    async def groups(self, *, timeout: float) -> list[GroupInfo]:
        return []

    async def group(self, jid: str, *, timeout: float) -> GroupInfo:
        member = GroupMember("15550001111@s.whatsapp.net", "superadmin")
        return GroupInfo(
            jid, "Team", created_at=datetime(2026, 1, 1, tzinfo=UTC), size=1, participants=(member,)
        )

    async def create_group(
        self, subject: str, participants: Sequence[str], *, timeout: float
    ) -> Any: ...

    async def update_participants(
        self, jid: str, action: Any, participants: Sequence[str], *, timeout: float
    ) -> Any: ...

    async def invite_code(self, jid: str, *, timeout: float) -> str:
        return "CODE"


def authorize(request: web.Request) -> None:
    if request.headers.get(INTERNAL_TOKEN_HEADER) != SECRET:
        raise Unauthenticated("internal endpoint: missing or wrong internal token")


def ask(
    shard: Any, lease_held: bool, body: dict[str, Any], secret: str = SECRET
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async def main() -> tuple[int, dict[str, Any], dict[str, str]]:
        endpoint = QueryEndpoint(shard, SimpleNamespace(held=lease_held), authorize)  # type: ignore[arg-type]
        app = web.Application()
        app.add_routes(endpoint.routes())
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                "/queries", json=body, headers={INTERNAL_TOKEN_HEADER: secret}
            )
            return response.status, await response.json(), dict(response.headers)

    return asyncio.run(main())


def shard(conn: object | None, *, draining: bool = False) -> Any:
    supervisor = SimpleNamespace(live_connection=conn)
    return SimpleNamespace(
        draining=draining,
        supervisors={"ses_1": supervisor},
        ctx=SimpleNamespace(settings=SimpleNamespace(engine="whatsmeow")),
    )


def test_an_answer_is_the_engines_as_json() -> None:
    status, body, _ = ask(
        shard(Socket()),
        True,
        {"session_id": "ses_1", "q": "check_numbers", "numbers": ["15550001111"]},
    )
    assert status == 200
    assert body["data"] == [
        {
            "number": "15550001111",
            "on_whatsapp": True,
            "jid": "15550001111@s.whatsapp.net",
            "lid": None,
        }
    ]
    status, body, _ = ask(
        shard(Socket()), True, {"session_id": "ses_1", "q": "group", "group": "1203631@g.us"}
    )
    assert status == 200 and body["data"]["id"] == "1203631"
    assert body["data"]["participants"][0]["role"] == "superadmin"


def test_without_the_secret_nothing_is_asked() -> None:
    status, body, _ = ask(shard(Socket()), True, {"session_id": "ses_1", "q": "groups"}, "wrong")
    assert status == 401 and body["error"]["code"] == "unauthenticated"


def test_no_lease_draining_or_no_socket_is_503_with_retry_after() -> None:
    query = {"session_id": "ses_1", "q": "groups"}
    for where, held in ((shard(Socket()), False), (shard(Socket(), draining=True), True)):
        status, body, headers = ask(where, held, query)
        assert (status, body["error"]["code"]) == (503, "runner_not_ready")
        assert int(headers["Retry-After"]) >= 1
    status, body, headers = ask(shard(None), True, query)
    assert (status, body["error"]["code"]) == (503, "session_not_connected")
    assert int(headers["Retry-After"]) >= 1
    status, body, _ = ask(shard(None), True, {**query, "session_id": "ses_other"})
    assert (status, body["error"]["code"]) == (503, "session_not_connected")


def test_an_engine_without_directory_queries_is_501_and_a_bad_query_400() -> None:
    status, body, _ = ask(shard(object()), True, {"session_id": "ses_1", "q": "groups"})
    assert (status, body["error"]["code"]) == (501, "not_supported")
    status, body, _ = ask(shard(Socket()), True, {"session_id": "ses_1", "q": "group"})
    assert (status, body["error"]["details"][0]["field"]) == (400, "group")
    status, _, _ = ask(shard(Socket()), True, {"session_id": "ses_1", "q": "drop tables"})
    assert status == 400
