"""Verification of Google-signed OIDC tokens (Cloud Tasks, Cloud Scheduler) via google-auth."""

from __future__ import annotations

from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

from wagate.errors import Unauthenticated

_request = google_requests.Request()


def verify_google_oidc(token: str, *, audience: str, allowed_emails: set[str]) -> dict[str, object]:
    try:
        claims: dict[str, object] = id_token.verify_oauth2_token(token, _request, audience=audience)
    except ValueError as e:
        raise Unauthenticated(f"invalid OIDC token: {e}") from None
    if claims.get("email") not in allowed_emails or not claims.get("email_verified", False):
        raise Unauthenticated("OIDC token from an unexpected service account")
    return claims
