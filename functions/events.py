"""The tenant's control over its events (docs/events.md): its event filter, a session's own
webhook URL and filter, the delivery log and redelivery, and the live stream
(GET /v1/events/stream). Registered on the api's router by functions.api (`register`)."""

from __future__ import annotations

from typing import Any

import flask
from pydantic import BaseModel, Field

from functions import auth
from functions.app import Gateway, gateway
from functions.web import Call, Doc, Router
from wagate.contracts import (
    EVENT_TYPES,
    PUBSUB_TOPIC_PATTERN,
    DeliveryPage,
    DeliveryView,
    EventType,
    TenantDoc,
)
from wagate.errors import Conflict, ValidationFailed
from wagate.services.event_log import EventLog, parse_cursor
from wagate.services.event_settings import EventSettings

EVENTS_FIELD = Field(
    None,
    description="Event types to deliver; null = all of them, [] = none",
    examples=[["session.state", "message.status"]],
)


class TenantWebhookView(BaseModel):
    """The tenant's webhook: the URL (set by an admin) and the event types it gets"""

    url: str | None
    events: list[EventType] | None = Field(description="null = every event type")
    has_secret: bool = Field(description="Whether a signing secret exists (never shown again)")


class SetTenantEventsRequest(BaseModel):
    events: list[EventType] | None = EVENTS_FIELD


class SetSessionWebhookRequest(BaseModel):
    url: str | None = Field(
        None,
        pattern=r"^https?://",
        max_length=2048,
        description="This session's webhook; null = the tenant's",
        examples=["https://example.com/hooks/shop-1"],
    )
    events: list[EventType] | None = Field(
        None,
        description="This session's event types; null = the tenant's filter",
        examples=[["session.state"]],
    )


class SessionWebhookView(BaseModel):
    session_id: str
    url: str | None
    events: list[EventType] | None
    secret: str | None = Field(
        None, description="Shown once, when this call created the tenant's signing secret"
    )


class EventSettingsView(BaseModel):
    """The tenant's event channels besides webhooks"""

    log: bool = Field(
        description="Keep a 24-hour event log, which GET /v1/events/stream reads and resumes from"
    )
    pubsub_topic: str | None = Field(
        None, description="The Pub/Sub topic that gets the same events as the webhook (by admin)"
    )


class SetPubSubRequest(BaseModel):
    topic: str | None = Field(
        None,
        pattern=PUBSUB_TOPIC_PATTERN,
        description="The tenant's topic; null stops publishing. The runner's service account "
        "needs roles/pubsub.publisher on it (Terraform grants it on the topics it creates)",
        examples=["projects/my-project/topics/wagate-events"],
    )


class PubSubSet(BaseModel):
    tenant_id: str
    topic: str | None


class SetEventSettingsRequest(BaseModel):
    log: bool = Field(description="Keep the event log of the stream", examples=[True])


STREAM_QUERY = {
    "session_id": ("string", "only this session's events"),
    "types": ("string", "comma-separated event types, e.g. session.state,message.status"),
    "last_event_id": ("string", "resume after this event (for clients that cannot set headers)"),
}
STREAM_HEADERS = {"Last-Event-ID": "resume after this event id (what the stream's id: said)"}

DELIVERY_QUERY = {
    "session_id": ("string", "only this session's events"),
    "state": ("string", "retrying | delivered | failed"),
    "limit": ("integer", "page size, 1 to 200 (default 50)"),
    "cursor": ("string", "next_cursor of the previous page"),
}


def settings_of(g: Gateway) -> EventSettings:
    return EventSettings(
        g.store,
        g.directory,
        g.clock,
        g.keyring,
        lambda url: g.egress.check_url(url, field="url"),
    )


def fresh_tenant(call: Call) -> TenantDoc:
    """The caller's tenant read now: the key check's copy may be seconds old, and these
    routes show or act on settings that just changed."""
    tenants = gateway().tenants
    return tenants.get(auth.tenant(call, tenants).id)


def get_tenant_webhook(call: Call) -> Any:
    tenant = fresh_tenant(call)
    return TenantWebhookView(
        url=tenant.webhook_url,
        events=tenant.webhook_events,
        has_secret=tenant.webhook_secret_sealed is not None,
    )


def set_tenant_events(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    body = call.json_body(SetTenantEventsRequest)
    updated = settings_of(g).set_tenant_events(tenant.id, body.events)
    return TenantWebhookView(
        url=updated.webhook_url,
        events=updated.webhook_events,
        has_secret=updated.webhook_secret_sealed is not None,
    )


def set_session_webhook(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    body = call.json_body(SetSessionWebhookRequest)
    session, secret = settings_of(g).set_session_webhook(
        tenant, call.args["session_id"], body.url, body.events
    )
    return SessionWebhookView(
        session_id=session.id, url=session.webhook_url, events=session.webhook_events, secret=secret
    )


def list_deliveries(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    state = call.request.args.get("state")
    if state is not None and state not in ("retrying", "delivered", "failed"):
        raise ValidationFailed("state must be retrying, delivered or failed", field="state")
    session_id = call.request.args.get("session_id")
    if session_id is not None:
        g.directory.owned(tenant.id, session_id)
    docs, cursor = g.deliveries.list(
        tenant.id,
        session_id=session_id,
        state=state,
        limit=call.query_int("limit", 50, 1, 200),
        cursor=call.query_cursor(),
    )
    return DeliveryPage(items=[DeliveryView.of(d) for d in docs], next_cursor=cursor)


def redeliver(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    doc = g.deliveries.redeliver(
        tenant.id,
        call.args["delivery_id"],
        g.queue,
        g.settings.sweeper_url,
        g.settings.queue_prefix,
    )
    return DeliveryView.of(doc), 202


def get_event_settings(call: Call) -> Any:
    tenant = fresh_tenant(call)
    return EventSettingsView(log=tenant.event_log, pubsub_topic=tenant.pubsub_topic)


def set_event_settings(call: Call) -> Any:
    g = gateway()
    tenant = auth.tenant(call, g.tenants)
    body = call.json_body(SetEventSettingsRequest)
    updated = settings_of(g).set_event_log(tenant.id, body.log)
    return EventSettingsView(log=updated.event_log, pubsub_topic=updated.pubsub_topic)


def set_pubsub_topic(call: Call) -> Any:
    g = gateway()
    auth.admin(call, g.settings)
    body = call.json_body(SetPubSubRequest)
    tenant = settings_of(g).set_pubsub_topic(call.args["tenant_id"], body.topic)
    return PubSubSet(tenant_id=tenant.id, topic=tenant.pubsub_topic)


def event_types(raw: str | None) -> set[EventType] | None:
    if raw is None or raw == "":
        return None
    wanted = {t.strip() for t in raw.split(",") if t.strip()}
    unknown = wanted - set(EVENT_TYPES)
    if unknown:
        raise ValidationFailed(
            f"unknown event type(s): {', '.join(sorted(unknown))}; known: "
            + ", ".join(EVENT_TYPES),
            field="types",
        )
    return {t for t in EVENT_TYPES if t in wanted}


def stream_events(call: Call) -> Any:
    g = gateway()
    tenant = fresh_tenant(call)
    if not tenant.event_log:
        raise Conflict(
            'the event log is off: PATCH /v1/events/settings {"log": true} first',
            field="log",
        )
    args = call.request.args
    cursor = parse_cursor(call.request.headers.get("Last-Event-ID")) or parse_cursor(
        args.get("last_event_id"), field="last_event_id"
    )
    session_id = args.get("session_id")
    if session_id is not None:
        g.directory.owned(tenant.id, session_id)
    body = EventLog(g.store, g.clock).stream(
        tenant.id,
        cursor,
        session_id=session_id,
        types=event_types(args.get("types")),
        hold_s=g.settings.event_stream_hold_s,
    )
    # The stream reads the store, never the request: no request context needed (the router
    # serves without Flask's, functions/server.py).
    return flask.Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def register(router: Router) -> None:
    tags = ("webhooks",)
    router.route(
        "/v1/webhooks",
        ["GET"],
        Doc("The tenant's webhook and event filter", responses={200: TenantWebhookView}, tags=tags),
    )(get_tenant_webhook)
    router.route(
        "/v1/webhooks",
        ["PATCH"],
        Doc(
            "Choose the event types the tenant's webhook gets",
            body=SetTenantEventsRequest,
            responses={200: TenantWebhookView},
            tags=tags,
        ),
    )(set_tenant_events)
    router.route(
        "/v1/sessions/<session_id>/webhook",
        ["PUT"],
        Doc(
            "Give a session its own webhook URL and event filter (null: the tenant's)",
            body=SetSessionWebhookRequest,
            responses={200: SessionWebhookView},
            tags=tags,
        ),
    )(set_session_webhook)
    router.route(
        "/v1/events/settings",
        ["GET"],
        Doc("The tenant's event log setting", responses={200: EventSettingsView}, tags=("events",)),
    )(get_event_settings)
    router.route(
        "/v1/events/settings",
        ["PATCH"],
        Doc(
            "Keep (or stop keeping) the event log the stream reads",
            body=SetEventSettingsRequest,
            responses={200: EventSettingsView},
            tags=("events",),
        ),
    )(set_event_settings)
    router.route(
        "/v1/admin/tenants/<tenant_id>/pubsub",
        ["PUT"],
        Doc(
            "Publish the tenant's events to a Pub/Sub topic too (or stop: null)",
            auth="admin",
            body=SetPubSubRequest,
            responses={200: PubSubSet},
            tags=("admin",),
        ),
    )(set_pubsub_topic)
    router.route(
        "/v1/events/stream",
        ["GET"],
        Doc(
            "The tenant's events as Server-Sent Events; resume with Last-Event-ID",
            responses={200: "text/event-stream"},
            query=STREAM_QUERY,
            headers=STREAM_HEADERS,
            tags=("events",),
        ),
    )(stream_events)
    router.route(
        "/v1/webhooks/deliveries",
        ["GET"],
        Doc(
            "The webhook delivery log, newest first: attempts, last status or error, next retry",
            responses={200: DeliveryPage},
            query=DELIVERY_QUERY,
            tags=tags,
        ),
    )(list_deliveries)
    router.route(
        "/v1/webhooks/deliveries/<delivery_id>:redeliver",
        ["POST"],
        Doc(
            "Deliver an event again (same event, same id)",
            responses={202: DeliveryView},
            tags=tags,
        ),
    )(redeliver)
