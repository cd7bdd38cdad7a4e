"""`wagate tenants …`: what the admin API does (create tenants, issue and revoke API keys, set the
webhook and the limits), for operators, straight on the store. Keys and webhook secrets are shown
once and never again; only their hashes (keys) or sealed form (secrets) are kept.

Revoking a key takes effect at once in the store; api instances that verified the key in the
last AUTH_CACHE_TTL_S seconds accept it until their cache entry expires (as with the admin API).
"""

from __future__ import annotations

import re
from typing import Any

import typer

from wagate.adapters.egress import EgressGuard
from wagate.contracts import TenantDoc, TenantLimits
from wagate.errors import NotFound, ValidationFailed
from wagate.services.tenants import AUTH_CACHE_TTL_S
from wagate.services.webhooks import new_secret, seal_secret
from wagate_cli.context import Operator, connect
from wagate_cli.output import (
    JSON_OPTION,
    OperatorTyper,
    check_id,
    emit_json,
    err,
    fields,
    out,
    table,
    wants_json,
)

app = OperatorTyper(help="Tenants, their API keys, webhook and limits.")
keys = OperatorTyper(help="A tenant's API keys (shown once when issued).")
app.add_typer(keys, name="keys")

WEBHOOK_PREFIXES = ("http://", "https://")
KEY_ID = re.compile(r"^[0-9a-f]{16}$")  # Tenants.issue_key: secrets.token_hex(8)


def tenant_summary(t: TenantDoc) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "webhook_url": t.webhook_url,
        "webhook_secret_set": t.webhook_secret_sealed is not None,
        "limits": t.limits.model_dump(mode="json"),
        "keys": [
            {
                "key_id": k.key_id,
                "prefix": k.prefix,
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
            }
            for k in t.api_keys
        ],
        "created_at": t.created_at,
    }


def _check_url(url: str, op: Operator | None = None) -> None:
    if not url.startswith(WEBHOOK_PREFIXES) or len(url) > 2048:
        raise ValidationFailed("the webhook URL must start with http:// or https://", field="url")
    if op is not None:  # the api's egress check, with the deployment's settings
        EgressGuard.from_settings(op.settings).check_url(url, field="url")


def _set_webhook(op: Operator, tenant_id: str, url: str | None) -> str | None:
    """Same as the admin API: a new secret per URL, sealed with the key ring, shown once."""
    if url is None:
        op.tenants.set_webhook(tenant_id, None, None)
        return None
    _check_url(url, op)
    secret = new_secret()
    op.tenants.set_webhook(tenant_id, url, seal_secret(op.keyring, tenant_id, secret))
    return secret


def _limits(current: TenantLimits, **given: Any) -> TenantLimits:
    changes = {k: v for k, v in given.items() if v is not None}
    return TenantLimits.model_validate({**current.model_dump(), **changes})


def _shown_once() -> None:
    err.print("[yellow]store the key (and secret) now: they are not shown again[/]")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Tenant name"),
    webhook_url: str | None = typer.Option(None, "--webhook-url", help="Where events are sent"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a tenant with its first API key (and webhook secret): shown once."""
    wants_json(as_json)
    if not name.strip() or len(name) > 128:
        raise ValidationFailed("the name must be 1 to 128 characters", field="name")
    if webhook_url is not None:
        _check_url(webhook_url)
    op = connect()
    if webhook_url is not None:
        _ = op.keyring  # fail before creating anything if secrets cannot be sealed
        _check_url(webhook_url, op)
    tenant = op.tenants.create(name.strip())
    secret = _set_webhook(op, tenant.id, webhook_url) if webhook_url else None
    key = op.tenants.issue_key(tenant.id)
    result = {
        "id": tenant.id,
        "name": tenant.name,
        "api_key": key.key,
        "key_id": key.key_id,
        "webhook_url": webhook_url,
        "webhook_secret": secret,
    }
    if as_json:
        emit_json(result)
        return
    rows: list[list[Any]] = [["tenant", tenant.id], ["name", tenant.name]]
    rows += [["key id", key.key_id], ["API key", key.key]]
    if secret:
        rows += [["webhook", webhook_url], ["webhook secret", secret]]
    out.print(fields("tenant created", rows))
    _shown_once()


@app.command("list")
def list_tenants(as_json: bool = JSON_OPTION) -> None:
    """Every tenant."""
    wants_json(as_json)
    tenants = connect().tenants.list()
    if as_json:
        emit_json({"items": [tenant_summary(t) for t in tenants], "count": len(tenants)})
        return
    out.print(
        table(
            f"{len(tenants)} tenant(s)",
            ["tenant", "name", "active keys", "webhook", "sends/min", "created"],
            [
                [
                    t.id,
                    t.name,
                    sum(1 for k in t.api_keys if k.revoked_at is None),
                    t.webhook_url,
                    t.limits.sends_per_minute,
                    t.created_at.strftime("%Y-%m-%d %H:%M"),
                ]
                for t in tenants
            ],
        )
    )


@app.command("show")
def show(
    tenant_id: str = typer.Argument(..., help="Tenant id (ten_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """One tenant: webhook, limits and keys (ids and prefixes only)."""
    wants_json(as_json)
    op = connect()
    tenant = op.tenants.get(check_id(tenant_id, "tenant", "tenant_id"))
    summary = tenant_summary(tenant)
    summary["sessions"] = op.sessions.tenant_sessions(tenant.id)  # against limits.max_sessions
    if as_json:
        emit_json(summary)
        return
    rows: list[list[Any]] = [
        ["name", tenant.name],
        ["webhook", tenant.webhook_url],
        ["webhook secret", "set" if tenant.webhook_secret_sealed else None],
        *([f"limit {k}", v] for k, v in summary["limits"].items()),
        ["sessions", f"{summary['sessions']} of {tenant.limits.max_sessions}"],
        ["created", tenant.created_at.isoformat()],
    ]
    out.print(fields(f"tenant {tenant.id}", rows))
    _print_keys(tenant)


def _print_keys(tenant: TenantDoc) -> None:
    out.print(
        table(
            "API keys",
            ["key id", "prefix", "created", "revoked"],
            [
                [
                    k.key_id,
                    k.prefix,
                    k.created_at.strftime("%Y-%m-%d %H:%M"),
                    k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else None,
                ]
                for k in tenant.api_keys
            ],
        )
    )


@app.command("set-webhook")
def set_webhook(
    tenant_id: str = typer.Argument(..., help="Tenant id"),
    url: str | None = typer.Argument(None, help="Webhook URL (omit with --remove)"),
    remove: bool = typer.Option(False, "--remove", help="Remove the webhook"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set the webhook URL (a new signing secret is generated and shown once) or remove it."""
    wants_json(as_json)
    if (url is None) == (not remove):
        raise ValidationFailed("give a URL, or --remove", field="url")
    op = connect()
    op.tenants.get(check_id(tenant_id, "tenant", "tenant_id"))
    secret = _set_webhook(op, tenant_id, None if remove else url)
    if as_json:
        emit_json({"id": tenant_id, "webhook_url": None if remove else url, "secret": secret})
        return
    if remove:
        out.print(f"{tenant_id}: webhook removed")
        return
    out.print(f"{tenant_id}: webhook {url}\nsigning secret: {secret}")
    _shown_once()


@app.command("set-limits")
def set_limits(
    tenant_id: str = typer.Argument(..., help="Tenant id"),
    sends_per_minute: int | None = typer.Option(None, help="API sends per minute"),
    session_creates_per_minute: int | None = typer.Option(None, help="Session creates per minute"),
    qr_fetches_per_5_minutes: int | None = typer.Option(None, help="QR fetches per 5 minutes"),
    pacing_per_second: float | None = typer.Option(
        None, help="WhatsApp sends per second per session"
    ),
    pacing_burst: int | None = typer.Option(None, help="Burst of WhatsApp sends per session"),
    max_sessions: int | None = typer.Option(None, help="Sessions the tenant may have"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a tenant's limits (the others keep their values)."""
    wants_json(as_json)
    op = connect()
    tenant = op.tenants.get(check_id(tenant_id, "tenant", "tenant_id"))
    limits = _limits(
        tenant.limits,
        sends_per_minute=sends_per_minute,
        session_creates_per_minute=session_creates_per_minute,
        qr_fetches_per_5_minutes=qr_fetches_per_5_minutes,
        pacing_per_second=pacing_per_second,
        pacing_burst=pacing_burst,
        max_sessions=max_sessions,
    )
    updated = op.tenant_docs.update(tenant_id, lambda t: t.model_copy(update={"limits": limits}))
    if as_json:
        emit_json({"id": tenant_id, "limits": updated.limits.model_dump(mode="json")})
        return
    out.print(
        table(
            f"limits of {tenant_id}",
            ["limit", "value"],
            [[k, v] for k, v in updated.limits.model_dump().items()],
        )
    )


# ---------------------------------------------------------------- keys


@keys.command("issue")
def issue_key(
    tenant_id: str = typer.Argument(..., help="Tenant id"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue another API key: shown once."""
    wants_json(as_json)
    key = connect().tenants.issue_key(check_id(tenant_id, "tenant", "tenant_id"))
    if as_json:
        emit_json({"tenant_id": tenant_id, "key_id": key.key_id, "api_key": key.key})
        return
    out.print(f"key id {key.key_id}\nAPI key {key.key}")
    _shown_once()


@keys.command("revoke")
def revoke_key(
    tenant_id: str = typer.Argument(..., help="Tenant id"),
    key_id: str = typer.Argument(..., help="Key id (see `tenants keys list`)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke an API key."""
    wants_json(as_json)
    if not KEY_ID.match(key_id):
        raise NotFound(f"key {key_id} not found", field="key_id")
    connect().tenants.revoke_key(check_id(tenant_id, "tenant", "tenant_id"), key_id)
    if as_json:
        emit_json({"tenant_id": tenant_id, "key_id": key_id, "revoked": True})
        return
    out.print(
        f"{key_id} revoked (api instances that verified it recently accept it for at most "
        f"{AUTH_CACHE_TTL_S:.0f} s more)"
    )


@keys.command("list")
def list_keys(
    tenant_id: str = typer.Argument(..., help="Tenant id"),
    as_json: bool = JSON_OPTION,
) -> None:
    """A tenant's keys (ids and prefixes; the keys themselves are never stored)."""
    wants_json(as_json)
    tenant = connect().tenants.get(check_id(tenant_id, "tenant", "tenant_id"))
    if as_json:
        emit_json({"tenant_id": tenant_id, "items": tenant_summary(tenant)["keys"]})
        return
    _print_keys(tenant)
