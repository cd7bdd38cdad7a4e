"""The cloud half of media URL signing, which cannot run here: with no key, the signer asks IAM
signBlob to sign as the runtime's own service account (its email and a fresh access token), and
reports missing credentials as the dependency being unavailable. IAM itself is replaced at the
library's one call to it; the local half (a generated key, the emulator) is
tests/integration/test_inbound_media.py."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import storage
from google.cloud.storage import _signing

from wagate.adapters.signed_urls import GcsUrlSigner
from wagate.errors import DependencyUnavailable

EMAIL = "wagate-runner@proj.iam.gserviceaccount.com"


class RuntimeCredentials:
    """Compute Engine credentials as Cloud Run has them: no key, a token after a refresh."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.token: str | None = None
        self.service_account_email = "default"  # what it says until the first refresh

    @property
    def valid(self) -> bool:
        return self.token is not None

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        self.service_account_email = EMAIL


def _signer() -> GcsUrlSigner:
    client = storage.Client(project="proj", credentials=AnonymousCredentials())
    return GcsUrlSigner(client, "wagate-media")


def test_without_a_key_the_url_is_signed_by_iam_as_the_runtime_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = RuntimeCredentials()
    monkeypatch.setattr(google.auth, "default", lambda scopes: (runtime, "proj"))
    asked: list[tuple[str, str, str]] = []

    def sign_blob(message: str, token: str, email: str, universe: str) -> bytes:
        asked.append((message.split("\n")[0], token, email))
        return base64.b64encode(b"signed by iam")

    monkeypatch.setattr(_signing, "_sign_message", sign_blob)
    signer = _signer()
    first = signer.sign("media/ten_1/med_01", 600)
    second = signer.sign("media/ten_1/med_02", 600)
    assert asked == [("GOOG4-RSA-SHA256", "token-1", EMAIL)] * 2
    assert runtime.refreshes == 1  # a valid token is reused
    query = dict(parse_qsl(urlsplit(first.url).query))
    assert query["X-Goog-Credential"].startswith(EMAIL + "/")
    assert query["X-Goog-Signature"] == b"signed by iam".hex()
    assert first.url.startswith("https://storage.googleapis.com/wagate-media/media/ten_1/med_01?")
    assert second.expires_at >= first.expires_at


def test_no_credentials_to_sign_with_is_a_dependency_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def nothing(scopes: Any) -> Any:
        raise DefaultCredentialsError("no credentials here")

    monkeypatch.setattr(google.auth, "default", nothing)
    with pytest.raises(DependencyUnavailable, match="no credentials"):
        _signer().sign("media/ten_1/med_01", 600)
