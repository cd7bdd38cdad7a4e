"""Who is calling: tenants by API key, operators by the admin key, Google (Cloud Tasks and
Cloud Scheduler) by OIDC token in the cloud or the shared secret locally."""

from __future__ import annotations

import hmac

from functions.web import Call
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.config import Settings
from wagate.contracts import TenantDoc
from wagate.errors import Unauthenticated
from wagate.services.tenants import Tenants


def bearer(call: Call) -> str:
    header = call.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "missing 'Authorization: Bearer <api key>' header", field="Authorization"
        )
    return token.strip()


def tenant(call: Call, tenants: Tenants) -> TenantDoc:
    return tenants.authenticate(bearer(call))


def admin(call: Call, settings: Settings) -> None:
    expected = settings.admin_key.get_secret_value() if settings.admin_key else None
    if not expected or not hmac.compare_digest(bearer(call).encode(), expected.encode()):
        raise Unauthenticated("an admin key is required", field="Authorization")


def internal(call: Call, settings: Settings) -> None:
    """Locally: the shared secret header. In the cloud: a Google-signed OIDC token."""
    if settings.env == "cloud":
        from wagate.adapters.oidc import verify_google_oidc

        verify_google_oidc(
            bearer(call),
            audience=settings.sweeper_url,
            allowed_emails={settings.tasks_service_account or ""},
        )
        return
    presented = call.request.headers.get(INTERNAL_TOKEN_HEADER, "")
    secret = settings.internal_secret.get_secret_value() if settings.internal_secret else ""
    if not secret or not hmac.compare_digest(presented.encode(), secret.encode()):
        raise Unauthenticated("internal endpoint: missing or wrong internal token")
