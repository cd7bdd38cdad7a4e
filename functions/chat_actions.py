"""Chat actions (docs/messaging.md, "Chat actions"): mark read, presence, edit and revoke, each
queued through the outbox like a send and answered 202 with the action (a message document:
GET /v1/messages/{id} shows its status). Registered on the api's router by functions.api."""

from __future__ import annotations

from typing import Any

from functions import auth
from functions.app import gateway
from functions.limits import idempotency_key, rate_limit
from functions.web import Call, Doc, Router
from wagate.contracts import EditMessageRequest, MarkReadRequest, MessageView, PresenceRequest
from wagate.services.outbox import request_fingerprint
from wagate.services.ratelimit import SENDS

IDEMPOTENCY = {"Idempotency-Key": "a repeat returns the first result"}
REFUSED = {
    409: "The message is dead or revoked, or its edit/revoke window has passed (error.code)",
    422: "The message cannot be edited (not a text) or revoked (a reaction, an action)",
}


def fingerprint(call: Call, body: bytes) -> str:
    """What an Idempotency-Key repeat must match: the action and its target, not only the body
    (`{"text": "x"}` on two messages are two requests)."""
    return request_fingerprint(f"{call.request.method} {call.request.path}\n".encode() + body)


def mark_read(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, SENDS)  # each action is a stanza to WhatsApp, like a send
    raw = call.raw_body(limit=64 * 1024)
    body = call.json_body(MarkReadRequest)
    accepted = g.chat_actions.mark_read(
        tenant,
        call.args["session_id"],
        call.args["chat"],
        body.up_to,
        idempotency_key=idempotency_key(call),
        fingerprint=fingerprint(call, raw),
    )
    return MessageView.of(accepted.message), 202


def set_presence(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, SENDS)  # each action is a stanza to WhatsApp, like a send
    raw = call.raw_body(limit=64 * 1024)
    body = call.json_body(PresenceRequest)
    accepted = g.chat_actions.set_presence(
        tenant,
        call.args["session_id"],
        call.args["chat"],
        body.state,
        idempotency_key=idempotency_key(call),
        fingerprint=fingerprint(call, raw),
    )
    return MessageView.of(accepted.message), 202


def edit_message(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, SENDS)  # each action is a stanza to WhatsApp, like a send
    raw = call.raw_body(limit=64 * 1024)
    body = call.json_body(EditMessageRequest)
    accepted = g.chat_actions.edit(
        tenant,
        call.args["message_id"],
        body.text,
        idempotency_key=idempotency_key(call),
        fingerprint=fingerprint(call, raw),
    )
    return MessageView.of(accepted.message), 202


def revoke_message(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, SENDS)  # each action is a stanza to WhatsApp, like a send
    accepted = g.chat_actions.revoke(
        tenant,
        call.args["message_id"],
        idempotency_key=idempotency_key(call),
        fingerprint=fingerprint(call, b""),
    )
    return MessageView.of(accepted.message), 202


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
    )(mark_read)
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
    )(set_presence)
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
    )(edit_message)
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
    )(revoke_message)
