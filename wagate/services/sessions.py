"""Session management from the api side (SPEC §4 Create/QR/Delete/Recover).

The api never touches sockets: it writes the desired state and sends a control task to the
runner of the session's shard, which owns the socket.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from wagate.contracts import ControlTask, CreateSessionRequest, SessionDoc, TenantDoc
from wagate.domain import ids
from wagate.domain.sessions import DesiredState, SessionState
from wagate.errors import Conflict, NotFound, SessionQuotaExceeded, ShardsFull
from wagate.ports import Clock, Store, TaskQueue, TaskSpec, Where
from wagate.queues import control_queue
from wagate.services.directory import SessionDirectory
from wagate.services.outbox import Routing


@dataclass(frozen=True)
class QrCodeView:
    code: str
    expires_at: str | None


class Sessions:
    def __init__(
        self,
        store: Store,
        queue: TaskQueue,
        clock: Clock,
        routing: Routing,
        directory: SessionDirectory,
        shard_count: int,
        sessions_per_shard: int = 100,
    ) -> None:
        self._sessions = store.collection("sessions", SessionDoc)
        self._queue = queue
        self._clock = clock
        self._routing = routing
        self._directory = directory
        self._shard_count = shard_count
        self._per_shard = sessions_per_shard

    def shard_loads(self) -> list[int]:
        """Live (not deleted) sessions per shard, in shard order."""
        return [
            self._sessions.count(
                [Where("shard", "==", shard), Where("desired", "==", DesiredState.RUNNING)]
            )
            for shard in range(self._shard_count)
        ]

    def tenant_sessions(self, tenant_id: str) -> int:
        """The tenant's live sessions: what its `limits.max_sessions` caps."""
        return self._sessions.count(
            [Where("tenant_id", "==", tenant_id), Where("desired", "==", DesiredState.RUNNING)]
        )

    def least_loaded_shard(self) -> int:
        """The least loaded shard with room; none has any → ShardsFull (an operator adds
        shards or raises WAGATE_SESSIONS_PER_SHARD)."""
        loads = self.shard_loads()
        room = [(load, shard) for shard, load in enumerate(loads) if load < self._per_shard]
        if not room:
            raise ShardsFull(
                f"every shard is full ({self._shard_count} shards of "
                f"{self._per_shard} sessions): the operator must add capacity",
                retry_after=300,
            )
        return min(room)[1]

    def create(self, tenant: TenantDoc, request: CreateSessionRequest) -> SessionDoc:
        """Checked before the write, so creates racing each other may pass the cap together;
        the per-tenant create rate limit bounds by how much (docs/sessions.md, "Quotas")."""
        cap = tenant.limits.max_sessions
        if self.tenant_sessions(tenant.id) >= cap:
            raise SessionQuotaExceeded(
                f"the tenant has its {cap} sessions (limits.max_sessions): delete one, or ask "
                "an admin to raise the limit",
                field="limits.max_sessions",
            )
        shard = self.least_loaded_shard()
        now = self._clock.now()
        doc = SessionDoc(
            id=ids.new_session_id(),
            tenant_id=tenant.id,
            name=request.name,
            shard=shard,
            pairing_phone=request.pairing_phone,
            created_at=now,
            updated_at=now,
        )
        self._sessions.create(doc)
        self.control(doc, "start")
        return doc

    def list_for_tenant(
        self, tenant: TenantDoc, *, limit: int, cursor: str | None
    ) -> tuple[list[SessionDoc], str | None]:
        docs = self._sessions.query(
            [Where("tenant_id", "==", tenant.id)],
            order_by="created_at",
            limit=limit + 1,
            start_after=cursor,
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1].id if more and docs else None)

    def get(self, tenant: TenantDoc, session_id: str) -> SessionDoc:
        return self._directory.fresh(tenant.id, session_id)

    def qr(self, tenant: TenantDoc, session_id: str) -> QrCodeView:
        doc = self._directory.fresh(tenant.id, session_id)
        if doc.desired != DesiredState.RUNNING:  # its last QR must not pair it again
            raise NotFound(
                "the session was deleted or stopped: it has no QR code", field="session_id"
            )
        if doc.state == SessionState.CONNECTED:
            raise Conflict("the session is already paired and connected", field="session_id")
        if doc.qr is None:
            raise NotFound(
                "no QR code yet: the session is starting (retry in a second)", field="qr"
            )
        expires = doc.qr_expires_at.isoformat() if doc.qr_expires_at else None
        return QrCodeView(code=doc.qr, expires_at=expires)

    def delete(self, tenant: TenantDoc, session_id: str) -> None:
        """Log out and wipe the backup; the runner does both when it gets the control task."""
        doc = self._directory.fresh(tenant.id, session_id)
        now = self._clock.now()
        self._sessions.update(
            doc.id,
            lambda d: d.model_copy(update={"desired": DesiredState.DELETED, "updated_at": now}),
        )
        self.control(doc, "logout")

    def recover(self, tenant: TenantDoc, session_id: str) -> SessionDoc:
        """The reconnect is the runner's (the control task); the document is written only
        when the session was meant to be stopped. The runner writes a pairing session's
        document every few seconds, and a write racing it used to fail all its retries.
        A deleted session stays deleted: 404, and nothing is written or sent."""
        doc = self._directory.fresh(tenant.id, session_id)
        if doc.desired == DesiredState.DELETED:
            raise _deleted()
        if doc.desired != DesiredState.RUNNING:
            now = self._clock.now()

            def resume(d: SessionDoc) -> SessionDoc:
                if d.desired == DesiredState.DELETED:  # deleted since it was read
                    raise _deleted()
                return d.model_copy(update={"desired": DesiredState.RUNNING, "updated_at": now})

            doc = self._sessions.update(doc.id, resume)
        self.control(doc, "recover")
        return doc

    def control(self, doc: SessionDoc, action: str) -> None:
        body = ControlTask.model_validate({"session_id": doc.id, "action": action})
        self._queue.enqueue(
            TaskSpec(
                queue=control_queue(self._routing.queue_prefix, doc.shard),
                name=ids.control_task_name(doc.id, action, secrets.token_hex(4)),
                url=self._routing.runner_url(doc.shard) + "/tasks/control",
                body=body.model_dump_json().encode(),
                dispatch_deadline_s=60,
            )
        )


def _deleted() -> NotFound:
    return NotFound("the session was deleted: it cannot be recovered", field="session_id")
