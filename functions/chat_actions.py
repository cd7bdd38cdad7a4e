"""Chat actions (docs/messaging.md, "Chat actions"): mark read, presence, edit and revoke, each
queued through the outbox like a send and answered 202 with the action (a message document:
GET /v1/messages/{id} shows its status). Registered on the api's router by functions.api."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions import auth
from functions.app import gateway
from functions.limits import idempotency_key, rate_limit, replay_of
from functions.web import Call, Doc, Router
from wagate.contracts import (
    EditMessageRequest,
    MarkReadRequest,
    MessageView,
    PresenceRequest,
    TenantDoc,
)
from wagate.services.chat_actions import ChatActions
from wagate.services.outbox import Accepted, request_fingerprint
from wagate.services.ratelimit import SENDS

MAX_BODY = 64 * 1024
IDEMPOTENCY = {"Idempotency-Key": "a repeat returns the first result"}
REFUSED = {
    409: "The message is dead or revoked, or its edit/revoke window has passed (error.code)",
    422: "The message cannot be edited (not a text) or revoked (a reaction, an action)",
}


def fingerprint(call: Call, body: bytes) -> str:
    """What an Idempotency-Key repeat must match: the action and its target, not only the body
    (`{"text": "x"}` on two messages are two requests)."""
    return request_fingerprint(f"{call.request.method} {call.request.path}\n".encode() + body)


@dataclass(frozen=True)
class Asked:
    """What every chat action route reads first: the tenant (authenticated, its send limit
    counted), its Idempotency-Key and the request's body."""

    chat_actions: ChatActions
    tenant: TenantDoc
    idempotency_key: str | None
    raw: bytes

    def keys(self, call: Call) -> dict[str, Any]:
        """What makes a repeat the same request, as the service takes it."""
        return {"idempotency_key": self.idempotency_key, "fingerprint": fingerprint(call, self.raw)}


Action = Callable[[Call, Asked], Accepted]


def action(handle: Action, *, body: bool = True) -> Callable[[Call], Any]:
    """The route of a chat action: 202 with the queued action. A repeat of an action already
    queued (its Idempotency-Key) is answered with it, even past the send limit."""

    @functools.wraps(handle)
    def route(call: Call) -> Any:
        g = gateway()
        tenant = auth.tenant(call, g.tenants)
        key = idempotency_key(call)
        raw = call.raw_body(limit=MAX_BODY) if body else b""
        replay = replay_of(tenant, key, fingerprint(call, raw))
        # Each action is a stanza to WhatsApp, like a send: it counts against the send limit.
        earlier = rate_limit(call, tenant, SENDS, replay=replay)
        if earlier is not None:
            return MessageView.of(earlier), 202
        accepted = handle(call, Asked(g.chat_actions, tenant, key, raw))
        return MessageView.of(accepted.message), 202

    return route


def mark_read(call: Call, a: Asked) -> Accepted:
    args = call.args["session_id"], call.args["chat"], call.json_body(MarkReadRequest).up_to
    return a.chat_actions.mark_read(a.tenant, *args, **a.keys(call))


def set_presence(call: Call, a: Asked) -> Accepted:
    args = call.args["session_id"], call.args["chat"], call.json_body(PresenceRequest).state
    return a.chat_actions.set_presence(a.tenant, *args, **a.keys(call))


def edit_message(call: Call, a: Asked) -> Accepted:
    text = call.json_body(EditMessageRequest).text
    return a.chat_actions.edit(a.tenant, call.args["message_id"], text, **a.keys(call))


def revoke_message(call: Call, a: Asked) -> Accepted:
    return a.chat_actions.revoke(a.tenant, call.args["message_id"], **a.keys(call))


def register(router: Router) -> None:
    tags = ("chat actions",)
    limit = "60 per minute (with sends)"
    router.route(
        "/v1/sessions/<session_id>/chats/<chat>:read",
        ["POST"],
        Doc(
            "Mark a chat read up to a received message; 202 with the queued action",
            body=MarkReadRequest,
            responses={202: MessageView},
            headers=IDEMPOTENCY,
            tags=tags,
            rate_limit=limit,
        ),
    )(action(mark_read))
    router.route(
        "/v1/sessions/<session_id>/chats/<chat>:presence",
        ["POST"],
        Doc(
            "Show typing, recording or paused in a chat (dropped if not sent within 20 s)",
            body=PresenceRequest,
            responses={202: MessageView},
            headers=IDEMPOTENCY,
            tags=tags,
            rate_limit=limit,
        ),
    )(action(set_presence))
    router.route(
        "/v1/messages/<message_id>",
        ["PATCH"],
        Doc(
            "Edit a sent text (within 15 minutes of sending); 202 with the queued edit",
            body=EditMessageRequest,
            responses={202: MessageView, **REFUSED},
            headers=IDEMPOTENCY,
            tags=tags,
            rate_limit=limit,
        ),
    )(action(edit_message))
    router.route(
        "/v1/messages/<message_id>",
        ["DELETE"],
        Doc(
            "Revoke a message for everyone (within 60 hours of sending); 202 with the queued "
            "revoke",
            responses={202: MessageView, **REFUSED},
            headers=IDEMPOTENCY,
            tags=tags,
            rate_limit=limit,
        ),
    )(action(revoke_message, body=False))
