"""A session's WhatsApp groups (/v1/sessions/{id}/groups…): list, one group and its members,
create, add/remove/promote/demote members, invite link (docs/messaging.md, "Groups and number
checks"). Each asks the session's live socket. Registered on the api's router by functions.api."""

from __future__ import annotations

import functools
from typing import Any

from functions import auth
from functions.app import gateway
from functions.limits import idempotency_key, rate_limit
from functions.web import Call, Doc, Router
from wagate.contracts.directory import (
    ChangeParticipantsRequest,
    CreateGroupRequest,
    GroupList,
    GroupView,
    InviteView,
    ParticipantsResult,
)
from wagate.services.outbox import request_fingerprint
from wagate.services.ratelimit import GROUP_CHANGES

TAGS = ("groups",)
LIVE = {
    409: "The session is not paired or was stopped (session_not_connected)",
    503: "The session is reconnecting, or its runner cannot be reached (Retry-After)",
}
NOT_SUPPORTED = {501: "The session's engine cannot do this (not_supported)"}


def list_groups(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    return g.groups.list(tenant.id, call.args["session_id"])


def get_group(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    return g.groups.get(tenant.id, call.args["session_id"], call.args["group_id"])


def create_group(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    session_id = call.args["session_id"]
    key = idempotency_key(call)
    raw = call.raw_body(limit=64 * 1024)
    fingerprint = request_fingerprint(raw)
    replay = None
    if key is not None:
        replay = functools.partial(g.groups.created, tenant.id, session_id, key, fingerprint)
    earlier = rate_limit(call, tenant, GROUP_CHANGES, subject=session_id, replay=replay)
    if earlier is not None:
        return earlier, 201
    body = call.json_body(CreateGroupRequest)
    group = g.groups.create(
        tenant.id,
        session_id,
        body,
        idempotency_key=key,
        fingerprint=fingerprint,
    )
    return group, 201


def change_participants(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, GROUP_CHANGES, subject=call.args["session_id"])
    body = call.json_body(ChangeParticipantsRequest)
    return g.groups.change(tenant.id, call.args["session_id"], call.args["group_id"], body)


def get_invite(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    return g.groups.invite(tenant.id, call.args["session_id"], call.args["group_id"])


def register(router: Router) -> None:
    base = "/v1/sessions/<session_id>/groups"
    router.route(
        base,
        ["GET"],
        Doc(
            "The groups the session is in (without their members)",
            responses={200: GroupList, **LIVE, **NOT_SUPPORTED},
            tags=TAGS,
        ),
    )(list_groups)
    router.route(
        base,
        ["POST"],
        Doc(
            "Create a group with the session as its owner; send to it with `to` = its jid",
            body=CreateGroupRequest,
            responses={201: GroupView, **LIVE, **NOT_SUPPORTED},
            headers={"Idempotency-Key": "a repeat returns the first group, never a second one"},
            tags=TAGS,
            rate_limit="30 group changes per hour per session",
        ),
    )(create_group)
    router.route(
        f"{base}/<group_id>",
        ["GET"],
        Doc(
            "One group: subject, owner, settings and members (the group id is the part of its "
            "JID before @g.us)",
            responses={200: GroupView, **LIVE, **NOT_SUPPORTED},
            tags=TAGS,
        ),
    )(get_group)
    router.route(
        f"{base}/<group_id>/participants",
        ["POST"],
        Doc(
            "Add, remove, promote or demote members (the session must be an admin); one status "
            "per member",
            body=ChangeParticipantsRequest,
            responses={200: ParticipantsResult, **LIVE, **NOT_SUPPORTED},
            tags=TAGS,
            rate_limit="30 group changes per hour per session",
        ),
    )(change_participants)
    router.route(
        f"{base}/<group_id>/invite",
        ["GET"],
        Doc(
            "The group's invite link (the session must be an admin)",
            responses={200: InviteView, **LIVE, **NOT_SUPPORTED},
            tags=TAGS,
        ),
    )(get_invite)
