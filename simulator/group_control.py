"""The control API's groups (simulator/PROTOCOL.md): a group made on someone's phone, members
added, removed, promoted or demoted by someone else, and every group as the server sees it."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from simulator.control import Body, _body, _ok, _world


class NewGroup(Body):
    owner: str
    subject: str = Field(min_length=1, max_length=100)
    members: list[str] = Field(default_factory=list)


class ParticipantsChange(Body):
    group: str
    action: Literal["add", "remove", "promote", "demote"]
    participants: list[str] = Field(min_length=1)
    by: str | None = None


async def create_group(request: web.Request) -> web.Response:
    body = await _body(request, NewGroup)
    group = _world(request).group_by_control(body.owner, body.subject, body.members)
    return _ok({"jid": group.jid, "invite": group.invite})


async def change_participants(request: web.Request) -> web.Response:
    body = await _body(request, ParticipantsChange)
    world = _world(request)
    results = world.participants_by_control(body.group, body.action, body.participants, body.by)
    return _ok({"results": results})


async def groups(request: web.Request) -> web.Response:
    return _ok({"groups": _world(request).describe_groups()})


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/control/groups", create_group),
            web.post("/control/group-participants", change_participants),
            web.get("/control/groups", groups),
        ]
    )
