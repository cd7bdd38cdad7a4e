"""Cloud Storage V4 signed URLs behind ports.UrlSigner: how an event hands a tenant a received
file without an API key.

In the cloud the runner has no private key: its own service account signs through IAM signBlob
(it needs roles/iam.serviceAccountTokenCreator on itself, infra/terraform/modules/wagate). Locally a
service-account key that the stack or the test generated signs (`local_signing_key`), and the URL
points at the Storage emulator, which serves the object without checking the signature.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google.auth
import google.auth.transport.requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.cloud import storage
from google.oauth2 import service_account

from wagate.adapters.storage import translated
from wagate.errors import DependencyUnavailable
from wagate.ports import SignedUrl

PUBLIC_ENDPOINT = "https://storage.googleapis.com"
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def local_signing_key(project_id: str = "wagate-local") -> str:
    """A fresh service-account JSON key for signing locally (the dev stack and the tests make
    their own; none is ever committed). Nothing but signatures is made with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": "local",
            "private_key": pem,
            "client_email": f"wagate-media-signer@{project_id}.iam.gserviceaccount.com",
            "client_id": "0",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


def expiry_of(url: str) -> datetime:
    """When a V4 signed URL stops working: X-Goog-Date + X-Goog-Expires."""
    query = parse_qs(urlsplit(url).query)
    signed_at = datetime.strptime(query["X-Goog-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed_at + timedelta(seconds=int(query["X-Goog-Expires"][0]))


class GcsUrlSigner:
    """ports.UrlSigner on one bucket. `key_json`: sign with that service-account key (local);
    None: sign as the runtime's own service account through IAM signBlob (cloud)."""

    def __init__(
        self,
        client: storage.Client,
        bucket: str,
        *,
        key_json: str | None = None,
        endpoint: str = PUBLIC_ENDPOINT,
    ) -> None:
        self._bucket = client.bucket(bucket)
        self._endpoint = endpoint.rstrip("/")
        self._key: Credentials | None = (
            service_account.Credentials.from_service_account_info(json.loads(key_json))
            if key_json
            else None
        )
        self._runtime: Any = None  # the runtime's credentials, made and refreshed on use
        self._lock = threading.Lock()

    def sign(self, name: str, ttl_s: int) -> SignedUrl:
        blob = self._bucket.blob(name)
        options: dict[str, Any] = {
            "version": "v4",
            "method": "GET",
            "expiration": timedelta(seconds=ttl_s),
            "api_access_endpoint": self._endpoint,
            # A received file is whatever a customer sent: a browser saves it, never renders it.
            "response_disposition": "attachment",
        }
        if self._key is not None:
            options["credentials"] = self._key
        else:
            options.update(self._iam_signing())
        with translated(f"signing a URL of {name}"):
            try:
                url = blob.generate_signed_url(**options)
            except (auth_errors.GoogleAuthError, ValueError) as e:
                raise DependencyUnavailable(f"cannot sign a URL of {name}: {e}") from e
        return SignedUrl(url, expiry_of(url))

    def _iam_signing(self) -> dict[str, Any]:
        """The account's email and a fresh access token: the library then asks IAM to sign."""
        with self._lock:
            try:
                if self._runtime is None:
                    self._runtime, _ = google.auth.default(scopes=_SCOPES)
                if not self._runtime.valid:
                    self._runtime.refresh(google.auth.transport.requests.Request())
            except auth_errors.GoogleAuthError as e:
                raise DependencyUnavailable(f"no credentials to sign media URLs: {e}") from e
            return {
                "credentials": self._runtime,
                "service_account_email": self._runtime.service_account_email,
                "access_token": self._runtime.token,
            }
