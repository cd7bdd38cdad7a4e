"""Signed webhooks: `X-Wagate-Signature: t=<unix>,v1=<hex hmac-sha256(secret, t + "." + body)>`.

Delivery happens in the sweeper function's /webhooks/deliver endpoint, called by the webhook
Cloud Tasks queue: it signs at delivery time (so a retry carries a fresh timestamp that a
receiver's replay window accepts), posts to the tenant's URL, and answers non-2xx when the
receiver does, so Cloud Tasks retries with backoff. Each event carries a unique id
(X-Wagate-Event-Id) for receivers to deduplicate.

The tenant's secret is stored sealed with the key ring and shown once when it is set.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wagate.contracts import TenantDoc, WebhookTask
from wagate.errors import DependencyUnavailable, NotFound
from wagate.ports import KeyRing, Store

SIGNATURE_HEADER = "X-Wagate-Signature"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """For receivers: True if the header signs `body` with `secret` within the time window."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def seal_secret(keyring: KeyRing, tenant_id: str, secret: str) -> bytes:
    nonce = os.urandom(12)
    key_id = keyring.current_id.encode()
    sealed = AESGCM(keyring.key(keyring.current_id)).encrypt(
        nonce, secret.encode(), b"wagate-webhook/" + tenant_id.encode()
    )
    return bytes([len(key_id)]) + key_id + nonce + sealed


def open_secret(keyring: KeyRing, tenant_id: str, blob: bytes) -> str:
    length = blob[0]
    key_id = sealed_key_id(blob)
    nonce, sealed = blob[1 + length : 13 + length], blob[13 + length :]
    try:
        plain = AESGCM(keyring.key(key_id)).decrypt(
            nonce, sealed, b"wagate-webhook/" + tenant_id.encode()
        )
    except InvalidTag:
        raise NotFound("the tenant's webhook secret cannot be opened") from None
    return plain.decode()


def sealed_key_id(blob: bytes) -> str:
    """The id of the key ring key a sealed secret was sealed with (its header)."""
    return blob[1 : 1 + blob[0]].decode()


def reseal_secret(keyring: KeyRing, tenant_id: str, blob: bytes) -> bytes | None:
    """The secret sealed again with the ring's current key; None when it already uses it.
    Raises NotFound when no key of the ring opens it."""
    if sealed_key_id(blob) == keyring.current_id:
        return None
    return seal_secret(keyring, tenant_id, open_secret(keyring, tenant_id, blob))


Poster = Callable[[str, bytes, dict[str, str]], int]


class WebhookDelivery:
    def __init__(self, store: Store, keyring: KeyRing, post: Poster) -> None:
        self._tenants = store.collection("tenants", TenantDoc)
        self._keyring = keyring
        self._post = post

    def deliver(self, task: WebhookTask) -> int:
        """POST the event; returns the receiver's status. Raises DependencyUnavailable on a
        non-2xx answer or a network error, so the queue retries."""
        tenant = self._tenants.get(task.tenant_id)
        if tenant is None or not tenant.webhook_url or tenant.webhook_secret_sealed is None:
            return 204  # the tenant removed its webhook: nothing to deliver, stop retrying
        secret = open_secret(self._keyring, tenant.id, tenant.webhook_secret_sealed)
        body = task.event.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            "X-Wagate-Event-Id": task.event.id,
            "X-Wagate-Event-Type": task.event.type,
            "User-Agent": "wagate-webhooks/1",
        }
        try:
            status = self._post(tenant.webhook_url, body, headers)
        except OSError as e:
            raise DependencyUnavailable(f"webhook receiver unreachable: {e}", retry_after=10) from e
        if not 200 <= status < 300:
            raise DependencyUnavailable(f"webhook receiver answered {status}", retry_after=10)
        return status
