"""The OIDC bearer token attached to dispatches of tasks that ask for one (EMULATOR ONLY).

Real Cloud Tasks mints a Google-signed ID token for the service account. The emulator cannot,
so it mints an HS256 JWT with the same claims (iss https://accounts.google.com, aud, email,
email_verified, sub, iat, exp) signed with a local shared secret. Targets running locally can
verify it with that secret or just decode it; no Google verifier will accept it. Hand-written
because it is a dozen lines of stdlib and keeps the emulator free of a JWT dependency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

ISSUER = "https://accounts.google.com"
DEFAULT_SECRET = "cloud-tasks-emulator"  # noqa: S105 (a well-known local test secret)
LIFETIME_S = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_id_token(secret: str, email: str, audience: str, now: float) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": "cloud-tasks-emulator"}
    issued = int(now)
    claims = {
        "iss": ISSUER,
        "aud": audience,
        "azp": email,
        "sub": email,
        "email": email,
        "email_verified": True,
        "iat": issued,
        "exp": issued + LIFETIME_S,
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256)
    return f"{signing_input}.{_b64(signature.digest())}"
