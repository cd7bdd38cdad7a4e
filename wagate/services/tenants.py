"""Tenants and their API keys.

A key is `wg_live_<key id>_<secret>`: random, shown once, stored only as a SHA-256 hash (the
secret has 192 bits of entropy, so a slow hash adds nothing) under api_keys/{key id}, which
finds the tenant in one read. Verified keys are cached briefly so a request costs no extra
read; revocation takes effect within the cache TTL (documented in docs/api.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from wagate.contracts import ApiKeyIndex, ApiKeyRecord, TenantDoc, TenantLimits
from wagate.domain.ids import new_id
from wagate.errors import NotFound, Unauthenticated
from wagate.ports import Clock, Store

KEY_PREFIX = "wg_live_"
AUTH_CACHE_TTL_S = 10.0


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: str  # shown once
    key_id: str
    prefix: str


class Tenants:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._tenants = store.collection("tenants", TenantDoc)
        self._keys = store.collection("api_keys", ApiKeyIndex)
        self._store = store
        self._clock = clock
        self._cache: dict[str, tuple[float, TenantDoc]] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, *, webhook_url: str | None = None, limits: TenantLimits | None = None
    ) -> TenantDoc:
        tenant = TenantDoc(
            id=new_id("ten"),
            name=name,
            webhook_url=webhook_url,
            limits=limits or TenantLimits(),
            created_at=self._clock.now(),
        )
        self._tenants.create(tenant)
        return tenant

    def get(self, tenant_id: str) -> TenantDoc:
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found", field="tenant_id")
        return tenant

    def list(self) -> list[TenantDoc]:
        return self._tenants.query(order_by="created_at")

    def update(self, tenant: TenantDoc) -> TenantDoc:
        return self._tenants.update(tenant.id, lambda _: tenant)

    def set_webhook(self, tenant_id: str, url: str | None, sealed_secret: bytes | None) -> None:
        self._tenants.update(
            tenant_id,
            lambda t: t.model_copy(
                update={"webhook_url": url, "webhook_secret_sealed": sealed_secret}
            ),
        )

    def issue_key(self, tenant_id: str) -> IssuedKey:
        self.get(tenant_id)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(24)
        digest = hash_secret(secret)
        record = ApiKeyRecord(
            key_id=key_id, prefix=KEY_PREFIX + key_id, hash=digest, created_at=self._clock.now()
        )
        self._keys.create(ApiKeyIndex(id=key_id, tenant_id=tenant_id, hash=digest))
        self._tenants.update(
            tenant_id,
            lambda t: t.model_copy(update={"api_keys": [*t.api_keys, record]}),
        )
        return IssuedKey(key=f"{KEY_PREFIX}{key_id}_{secret}", key_id=key_id, prefix=record.prefix)

    def revoke_key(self, tenant_id: str, key_id: str) -> None:
        index = self._keys.get(key_id)
        if index is None or index.tenant_id != tenant_id:
            raise NotFound(f"key {key_id} not found", field="key_id")
        now = self._clock.now()
        self._keys.update(key_id, lambda k: k.model_copy(update={"revoked_at": now}))

        def mark(t: TenantDoc) -> TenantDoc:
            keys = [
                k.model_copy(update={"revoked_at": now}) if k.key_id == key_id else k
                for k in t.api_keys
            ]
            return t.model_copy(update={"api_keys": keys})

        self._tenants.update(tenant_id, mark)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if not k.startswith(key_id)}

    def authenticate(self, presented: str) -> TenantDoc:
        """The tenant a bearer key belongs to; Unauthenticated for anything else."""
        if not presented.startswith(KEY_PREFIX):
            raise Unauthenticated("invalid API key")
        key_id, _, secret = presented[len(KEY_PREFIX) :].partition("_")
        if not key_id or not secret:
            raise Unauthenticated("invalid API key")
        cache_key = f"{key_id}:{hash_secret(secret)}"
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit and hit[0] > now:
            return hit[1]
        index = self._keys.get(key_id)
        if (
            index is None
            or index.revoked_at is not None
            or not hmac.compare_digest(index.hash, hash_secret(secret))
        ):
            raise Unauthenticated("invalid or revoked API key")
        tenant = self.get(index.tenant_id)
        with self._lock:
            self._cache[cache_key] = (now + AUTH_CACHE_TTL_S, tenant)
        return tenant
