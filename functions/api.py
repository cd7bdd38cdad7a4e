"""The public API's handlers (/v1/...): parse, call a wagate service, render."""

from __future__ import annotations

import io
from typing import Any

import flask
import segno
from pydantic import BaseModel

from functions import (
    admin,
    auth,
    chat_actions,
    console,
    contacts,
    events,
    groups,
    health,
    reference,
)
from functions.app import gateway
from functions.limits import idempotency_key, rate_limit, replay_of
from functions.openapi import build
from functions.web import Call, Doc, Router
from wagate.contracts import (
    MAX_MEDIA_BYTES,
    CreateSessionRequest,
    InboundView,
    MediaContent,
    MediaView,
    MessageListing,
    MessageView,
    RetryDeadRequest,
    RetryDeadResult,
    SendMessageRequest,
    SessionView,
)
from wagate.errors import ValidationFailed
from wagate.services.outbox import request_fingerprint
from wagate.services.ratelimit import QR_FETCHES, SENDS, SESSION_CREATES

router = Router()


PAGING = {
    "limit": ("integer", "page size, 1 to 500 (default 50)"),
    "cursor": ("string", "next_cursor of the previous page"),
}


class SessionList(BaseModel):
    items: list[SessionView]
    next_cursor: str | None = None


# ------------------------------------------------------------------ sessions


@router.route(
    "/v1/sessions",
    ["POST"],
    Doc(
        "Create a session (a WhatsApp account); it starts pairing. The body may be left out",
        body=CreateSessionRequest,
        body_required=False,
        responses={201: SessionView},
        tags=("sessions",),
        rate_limit="10 per minute",
    ),
)
def create_session(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, SESSION_CREATES)
    body = (
        call.json_body(CreateSessionRequest) if call.request.get_data() else CreateSessionRequest()
    )
    return SessionView.of(g.sessions.create(tenant, body)), 201


@router.route(
    "/v1/sessions",
    ["GET"],
    Doc("List sessions", responses={200: SessionList}, query=PAGING, tags=("sessions",)),
)
def list_sessions(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    docs, cursor = g.sessions.list_for_tenant(
        tenant, limit=call.query_int("limit", 50, 1, 500), cursor=call.query_cursor()
    )
    return SessionList(items=[SessionView.of(d) for d in docs], next_cursor=cursor)


@router.route(
    "/v1/sessions/<session_id>",
    ["GET"],
    Doc("A session's status", responses={200: SessionView}, tags=("sessions",)),
)
def get_session(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    return SessionView.of(g.sessions.get(tenant, call.args["session_id"]))


@router.route(
    "/v1/sessions/<session_id>",
    ["DELETE"],
    Doc("Log out and wipe the backup", responses={202: "Logout requested"}, tags=("sessions",)),
)
def delete_session(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    g.sessions.delete(tenant, call.args["session_id"])
    return flask.Response(status=202)


@router.route(
    "/v1/sessions/<session_id>:recover",
    ["POST"],
    Doc("Force a reconnect", responses={202: SessionView}, tags=("sessions",)),
)
def recover_session(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    return SessionView.of(g.sessions.recover(tenant, call.args["session_id"])), 202


@router.route(
    "/v1/sessions/<session_id>/qr",
    ["GET"],
    Doc(
        "The current QR code (png, svg, text or json)",
        responses={200: "image/png"},
        query={"format": ("string", "png | svg | text | json")},
        tags=("sessions",),
        rate_limit="5 per 5 minutes",
    ),
)
def get_session_qr(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    rate_limit(call, tenant, QR_FETCHES)
    fmt = call.request.args.get("format", "png")
    if fmt not in ("png", "svg", "text", "json"):
        raise ValidationFailed("format must be png, svg, text or json", field="format")
    qr = g.sessions.qr(tenant, call.args["session_id"])
    if fmt == "json":
        return {"code": qr.code, "expires_at": qr.expires_at}
    code = segno.make(qr.code, error="l")
    headers = {"Cache-Control": "no-store"}
    if fmt == "text":
        out = io.StringIO()
        code.terminal(out=out, compact=True, border=2)
        return flask.Response(out.getvalue(), mimetype="text/plain", headers=headers)
    buffer = io.BytesIO()
    code.save(buffer, kind=fmt, scale=6, border=2)
    mimetype = "image/png" if fmt == "png" else "image/svg+xml"
    return flask.Response(buffer.getvalue(), mimetype=mimetype, headers=headers)


# ------------------------------------------------------------------ messages


@router.route(
    "/v1/sessions/<session_id>/messages",
    ["POST"],
    Doc(
        "Send a message; 202 once it is stored and queued",
        body=SendMessageRequest,
        responses={202: MessageView},
        headers={"Idempotency-Key": "a repeat returns the first result"},
        tags=("messages",),
        rate_limit="60 per minute",
    ),
)
def send_message(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    key = idempotency_key(call)
    raw = call.raw_body(limit=1024 * 1024)
    fingerprint = request_fingerprint(raw)
    earlier = rate_limit(call, tenant, SENDS, replay=replay_of(tenant, key, fingerprint))
    if earlier is not None:
        return MessageView.of(earlier), 202
    body = call.json_body(SendMessageRequest)
    if isinstance(body.content, MediaContent) and body.content.media_id is not None:
        g.media_files.check(tenant.id, body.content.media_id, body.content.type)
    if isinstance(body.content, MediaContent) and body.content.url is not None:
        g.egress.check_url(str(body.content.url), field="content.url")
    accepted = g.outbox.accept(
        tenant,
        call.args["session_id"],
        body,
        idempotency_key=key,
        fingerprint=fingerprint,
    )
    return MessageView.of(accepted.message), 202


@router.route(
    "/v1/sessions/<session_id>/messages",
    ["GET"],
    Doc(
        "List sent (direction=out) or received (direction=in) messages",
        responses={200: MessageListing},
        query={**PAGING, "direction": ("string", "out | in")},
        tags=("messages",),
    ),
)
def list_messages(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    direction = call.request.args.get("direction", "out")
    if direction not in ("out", "in"):
        raise ValidationFailed("direction must be out or in", field="direction")
    limit = call.query_int("limit", 50, 1, 500)
    cursor = call.query_cursor()
    if direction == "out":
        docs, nxt = g.outbox.list_for_session(
            tenant.id, call.args["session_id"], limit=limit, cursor=cursor
        )
        return MessageListing(items=[MessageView.of(d) for d in docs], next_cursor=nxt)
    inbound, nxt = g.inbox.list(tenant.id, call.args["session_id"], limit=limit, cursor=cursor)
    return MessageListing(items=[InboundView.of(d) for d in inbound], next_cursor=nxt)


@router.route(
    "/v1/media",
    ["POST"],
    Doc(
        "Upload a media file (at most 16 MB; the body is the file, Content-Type its type, one "
        "WhatsApp can send: docs/messaging.md)",
        responses={201: MediaView, 415: "Content-Type is not a media type WhatsApp can send"},
        tags=("messages",),
    ),
)
def upload_media(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    data = call.raw_body(limit=MAX_MEDIA_BYTES)
    content_type = call.request.headers.get("Content-Type", "")
    return g.media_files.upload(tenant.id, data, content_type), 201


@router.route(
    "/v1/media/<media_id>",
    ["GET"],
    Doc(
        'A media file of the tenant, uploaded or received (docs/messaging.md, "Inbound '
        'media"): the bytes, Content-Type its type, ETag its SHA-256',
        responses={200: "application/octet-stream"},
        tags=("messages",),
    ),
)
def get_media(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    view, data = g.media_files.read(tenant.id, call.args["media_id"])
    headers = {
        "ETag": f'"{view.sha256}"',
        "X-Wagate-Sha256": view.sha256,
        "Cache-Control": "private, max-age=3600",
        # Served as a download: a received file is whatever a customer sent.
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }
    return flask.Response(data, mimetype=view.content_type, headers=headers)


@router.route(
    "/v1/messages/<message_id>",
    ["GET"],
    Doc("A message's status and history", responses={200: MessageView}, tags=("messages",)),
)
def get_message(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    return MessageView.of(g.outbox.get(tenant.id, call.args["message_id"]))


@router.route(
    "/v1/messages:retry-dead",
    ["POST"],
    Doc(
        "Re-enqueue dead letters",
        body=RetryDeadRequest,
        responses={200: RetryDeadResult},
        tags=("messages",),
    ),
)
def retry_dead_messages(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    body = call.json_body(RetryDeadRequest)
    retried = g.outbox.retry_dead(
        tenant.id,
        session_id=body.session_id,
        since=body.since,
        until=body.until,
        reason=body.reason,
        limit=body.limit,
    )
    return RetryDeadResult(retried=retried)


@router.route("/v1/openapi.json", ["GET"])
def openapi_document(call: Call) -> Any:
    return build(router.routes)


# Tenants, their webhooks and keys (/v1/admin/tenants): functions/admin.py.
router.include(admin.router)
# The interactive API reference (/v1/docs, Swagger UI): functions/reference.py.
reference.register(router)
# GET /v1/health: functions/health.py.
health.register(router)
# Event filters, per-session webhooks, the delivery log and redelivery: functions/events.py.
events.register(router)
# Number checks (…/contacts:check) and groups (…/groups): functions/contacts.py, groups.py.
contacts.register(router)
groups.register(router)
# Mark read, presence, edit and revoke: functions/chat_actions.py.
chat_actions.register(router)
# The web console (/console): functions/console.py.
console.register(router)
