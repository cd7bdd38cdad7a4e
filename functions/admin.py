"""The operators' tenant routes (/v1/admin/tenants...): create a tenant with its first key, set
its webhook, issue and revoke keys. Admin-authenticated; served by the api's router."""

from __future__ import annotations

from typing import Any

import flask
from pydantic import BaseModel, Field

from functions import auth
from functions.app import gateway
from functions.web import Call, Doc, Router
from wagate.contracts import TenantLimits
from wagate.errors import DependencyUnavailable
from wagate.services.webhooks import new_secret, seal_secret

router = Router()


class CreateTenantRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    webhook_url: str | None = Field(None, pattern=r"^https?://", max_length=2048)
    limits: TenantLimits | None = None


class TenantCreated(BaseModel):
    id: str
    name: str
    api_key: str = Field(description="Shown once: store it now")
    key_id: str
    webhook_secret: str | None = Field(None, description="Shown once: verifies webhook signatures")


class SetWebhookRequest(BaseModel):
    url: str | None = Field(None, pattern=r"^https?://", max_length=2048)


class WebhookSet(BaseModel):
    url: str | None
    secret: str | None = Field(None, description="Shown once")


class KeyIssued(BaseModel):
    api_key: str
    key_id: str


@router.route(
    "/v1/admin/tenants",
    ["POST"],
    Doc(
        "Create a tenant and its first API key",
        auth="admin",
        body=CreateTenantRequest,
        responses={201: TenantCreated},
        tags=("admin",),
    ),
)
def create_tenant(call: Call) -> Any:
    g = gateway()
    auth.admin(call, g.settings)
    body = call.json_body(CreateTenantRequest)
    if body.webhook_url:
        g.egress.check_url(body.webhook_url, field="webhook_url")
    tenant = g.tenants.create(body.name, limits=body.limits)
    secret = _set_webhook(tenant.id, body.webhook_url) if body.webhook_url else None
    key = g.tenants.issue_key(tenant.id)
    return TenantCreated(
        id=tenant.id, name=tenant.name, api_key=key.key, key_id=key.key_id, webhook_secret=secret
    ), 201


def _set_webhook(tenant_id: str, url: str | None) -> str | None:
    g = gateway()
    if url is None:
        g.tenants.set_webhook(tenant_id, None, None)
        return None
    if g.keyring is None:
        raise DependencyUnavailable("WAGATE_BACKUP_KEYS is not configured: cannot seal secrets")
    secret = new_secret()
    g.tenants.set_webhook(tenant_id, url, seal_secret(g.keyring, tenant_id, secret))
    return secret


@router.route(
    "/v1/admin/tenants/<tenant_id>/webhook",
    ["PUT"],
    Doc(
        "Set or remove the webhook; returns a new signing secret once",
        auth="admin",
        body=SetWebhookRequest,
        responses={200: WebhookSet},
        tags=("admin",),
    ),
)
def set_webhook(call: Call) -> Any:
    g = gateway()
    auth.admin(call, g.settings)
    body = call.json_body(SetWebhookRequest)
    if body.url:
        g.egress.check_url(body.url, field="url")
    g.tenants.get(call.args["tenant_id"])
    secret = _set_webhook(call.args["tenant_id"], body.url)
    return WebhookSet(url=body.url, secret=secret)


@router.route(
    "/v1/admin/tenants/<tenant_id>/keys",
    ["POST"],
    Doc(
        "Issue another API key (shown once)",
        auth="admin",
        responses={201: KeyIssued},
        tags=("admin",),
    ),
)
def issue_key(call: Call) -> Any:
    g = gateway()
    auth.admin(call, g.settings)
    key = g.tenants.issue_key(call.args["tenant_id"])
    return KeyIssued(api_key=key.key, key_id=key.key_id), 201


@router.route(
    "/v1/admin/tenants/<tenant_id>/keys/<key_id>",
    ["DELETE"],
    Doc("Revoke an API key", auth="admin", responses={204: "Revoked"}, tags=("admin",)),
)
def revoke_key(call: Call) -> Any:
    g = gateway()
    auth.admin(call, g.settings)
    g.tenants.revoke_key(call.args["tenant_id"], call.args["key_id"])
    return flask.Response(status=204)
