"""Signed webhooks: `X-Wagate-Signature: t=<unix>,v1=<hex hmac-sha256(secret, t + "." + body)>`.

Delivery happens in the sweeper function's /webhooks/deliver endpoint, called by the webhook
Cloud Tasks queue: it signs at delivery time (so a retry carries a fresh timestamp that a
receiver's replay window accepts), posts to the session's or the tenant's URL (through the
egress guard, functions.app), records the attempt in the delivery log, and answers non-2xx when
the receiver does, so Cloud Tasks retries with backoff. Each event carries a unique id
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

from wagate.contracts import SessionDoc, TenantDoc, WebhookTask
from wagate.errors import DependencyUnavailable, NotFound, WagateError
from wagate.logs import get_logger
from wagate.ports import KeyRing, Store
from wagate.services.deliveries import DeliveryLog
from wagate.services.events import webhook_target

log = get_logger("wagate.webhooks")
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
    def __init__(
        self, store: Store, keyring: KeyRing, post: Poster, log: DeliveryLog | None = None
    ) -> None:
        self._tenants = store.collection("tenants", TenantDoc)
        self._sessions = store.collection("sessions", SessionDoc)
        self._keyring = keyring
        self._post = post
        self._log = log

    def deliver(self, task: WebhookTask, *, retry: int = 0) -> int:
        """POST the event to where it goes now (the session's webhook or the tenant's, if its
        filter takes the event type) and record the attempt; returns the receiver's status.
        Raises DependencyUnavailable on a non-2xx answer or a network error, so the queue
        retries. `retry` is the task's retry count (X-CloudTasks-TaskRetryCount)."""
        tenant = self._tenants.get(task.tenant_id)
        session = self._sessions.get(task.event.session_id)
        if session is not None and session.tenant_id != task.tenant_id:
            session = None
        url = webhook_target(tenant, session, task.event.type)
        if tenant is None or url is None or tenant.webhook_secret_sealed is None:
            return 204  # no webhook wants this event (any more): nothing to do, stop retrying
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
            status = self._post(url, body, headers)
        except OSError as e:
            self._record(task, url, retry, None, f"unreachable: {e}")
            raise DependencyUnavailable(f"webhook receiver unreachable: {e}", retry_after=10) from e
        ok = 200 <= status < 300
        self._record(task, url, retry, status, None if ok else f"answered {status}")
        if not ok:
            raise DependencyUnavailable(f"webhook receiver answered {status}", retry_after=10)
        return status

    def _record(
        self, task: WebhookTask, url: str, retry: int, status: int | None, error: str | None
    ) -> None:
        if self._log is None:
            return
        try:
            self._log.record(task, url, retry=retry, status=status, error=error)
        except WagateError as e:  # the log is for people; the delivery itself must go on
            log.warning("delivery not logged", event_id=task.event.id, error=e.message)
