"""A tenant's own control over its events: the tenant-wide event filter, a session's webhook
URL and filter overriding the tenant's (wagate.services.events.webhook_target), and whether
the tenant keeps the event log the stream reads (wagate.services.event_log).

Every event is signed with the tenant's one secret, whichever URL it goes to: a session URL
set while the tenant has no secret yet creates it (shown once, like the admin call does).
URLs are checked by the egress guard before they are stored, and again at every delivery.
"""

from __future__ import annotations

from collections.abc import Callable

from wagate.contracts import EventType, SessionDoc, TenantDoc
from wagate.errors import DependencyUnavailable
from wagate.ports import Clock, KeyRing, Store
from wagate.services.directory import SessionDirectory
from wagate.services.webhooks import new_secret, seal_secret

UrlCheck = Callable[[str], None]  # raises a 400 (EgressRefused, ValidationFailed) when refused


class EventSettings:
    def __init__(
        self,
        store: Store,
        directory: SessionDirectory,
        clock: Clock,
        keyring: KeyRing | None,
        check_url: UrlCheck,
    ) -> None:
        self._tenants = store.collection("tenants", TenantDoc)
        self._sessions = store.collection("sessions", SessionDoc)
        self._directory = directory
        self._clock = clock
        self._keyring = keyring
        self._check_url = check_url

    def set_tenant_events(self, tenant_id: str, events: list[EventType] | None) -> TenantDoc:
        return self._tenants.update(
            tenant_id, lambda t: t.model_copy(update={"webhook_events": _unique(events)})
        )

    def set_event_log(self, tenant_id: str, keep: bool) -> TenantDoc:
        return self._tenants.update(tenant_id, lambda t: t.model_copy(update={"event_log": keep}))

    def set_pubsub_topic(self, tenant_id: str, topic: str | None) -> TenantDoc:
        return self._tenants.update(
            tenant_id, lambda t: t.model_copy(update={"pubsub_topic": topic})
        )

    def set_session_webhook(
        self,
        tenant: TenantDoc,
        session_id: str,
        url: str | None,
        events: list[EventType] | None,
    ) -> tuple[SessionDoc, str | None]:
        """Store the session's URL and filter; returns the session and, when this created the
        tenant's signing secret, that secret (shown once)."""
        self._directory.owned(tenant.id, session_id)
        if url is not None:
            self._check_url(url)
        secret = None
        if url is not None and tenant.webhook_secret_sealed is None:
            secret = self._create_secret(tenant.id)
        now = self._clock.now()
        session = self._sessions.update(
            session_id,
            lambda d: d.model_copy(
                update={"webhook_url": url, "webhook_events": _unique(events), "updated_at": now}
            ),
        )
        return session, secret

    def _create_secret(self, tenant_id: str) -> str | None:
        if self._keyring is None:
            raise DependencyUnavailable("WAGATE_BACKUP_KEYS is not configured: cannot seal secrets")
        keyring = self._keyring
        secret = new_secret()
        created: list[bool] = []

        def seal_once(t: TenantDoc) -> TenantDoc:
            created.clear()
            if t.webhook_secret_sealed is not None:
                return t  # another request created it meanwhile: that one showed it
            created.append(True)
            return t.model_copy(
                update={"webhook_secret_sealed": seal_secret(keyring, t.id, secret)}
            )

        self._tenants.update(tenant_id, seal_once)
        return secret if created else None


def _unique(events: list[EventType] | None) -> list[EventType] | None:
    return None if events is None else list(dict.fromkeys(events))
