"""The webhook delivery log (webhook_deliveries/{event id}) and redelivery.

The sweeper records every attempt it makes (wagate.services.webhooks): the URL, the receiver's
status or the network error, the attempt count, and — from the webhook queue's retry settings
— when Cloud Tasks will try again, or that it gave up. A tenant lists its log and asks for a
redelivery: a new task (its own name, `wh-<id>-r<n>`) carrying the same event, same id, so a
receiver that already has it deduplicates it. Entries expire after DELIVERY_RETENTION (TTL).
"""

from __future__ import annotations

from datetime import timedelta

from wagate.contracts import DELIVERY_RETENTION, WebhookDeliveryDoc, WebhookTask
from wagate.errors import NotFound
from wagate.ports import Clock, Store, TaskQueue, TaskSpec, Where
from wagate.queues import QueueSpec, all_queues, webhook_queue

DELIVER_PATH = "/webhooks/deliver"
ERROR_CHARS = 300


def webhook_queue_spec(prefix: str) -> QueueSpec:
    name = webhook_queue(prefix)
    return next(spec for spec in all_queues(prefix, 0) if spec.name == name)


def delivery_task(sweeper_url: str, prefix: str, name: str, task: WebhookTask) -> TaskSpec:
    """The webhook queue's task that delivers `task.event` (the runner's and redeliveries)."""
    return TaskSpec(
        queue=webhook_queue(prefix),
        name=name,
        url=sweeper_url.rstrip("/") + DELIVER_PATH,
        body=task.model_dump_json().encode(),
        dispatch_deadline_s=30,
    )


class DeliveryLog:
    def __init__(self, store: Store, clock: Clock, spec: QueueSpec) -> None:
        self._log = store.collection("webhook_deliveries", WebhookDeliveryDoc)
        self._clock = clock
        self._spec = spec

    def record(
        self,
        task: WebhookTask,
        url: str,
        *,
        retry: int,
        status: int | None,
        error: str | None,
    ) -> WebhookDeliveryDoc:
        """One attempt; `retry` is the task's X-CloudTasks-TaskRetryCount (0 on its first)."""
        now = self._clock.now()
        delivered = status is not None and 200 <= status < 300
        spent = 0 <= self._spec.max_attempts <= retry + 1
        next_retry = None
        if not delivered and not spent:
            next_retry = now + timedelta(seconds=self._spec.retry_interval_s(retry + 1))

        def attempt(current: WebhookDeliveryDoc | None) -> WebhookDeliveryDoc:
            base = current or WebhookDeliveryDoc(
                id=task.event.id,
                tenant_id=task.tenant_id,
                session_id=task.event.session_id,
                event=task.event,
                url=url,
                state="retrying",
                created_at=now,
                expire_at=now + DELIVERY_RETENTION,
            )
            return base.model_copy(
                update={
                    "url": url,
                    "state": "delivered" if delivered else ("failed" if spent else "retrying"),
                    "attempts": base.attempts + 1,
                    "last_status": status,
                    "last_error": error[:ERROR_CHARS] if error else None,
                    "last_attempt_at": now,
                    "next_retry_at": next_retry,
                    "delivered_at": now if delivered else base.delivered_at,
                    "expire_at": now + DELIVERY_RETENTION,
                }
            )

        return self._log.upsert(task.event.id, attempt)

    def list(
        self,
        tenant_id: str,
        *,
        session_id: str | None = None,
        state: str | None = None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[WebhookDeliveryDoc], str | None]:
        """The tenant's deliveries, newest first."""
        where = [Where("tenant_id", "==", tenant_id)]
        if session_id is not None:
            where.append(Where("session_id", "==", session_id))
        if state is not None:
            where.append(Where("state", "==", state))
        docs = self._log.query(
            where, order_by="created_at", descending=True, limit=limit + 1, start_after=cursor
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1].id if more and docs else None)

    def get(self, tenant_id: str, delivery_id: str) -> WebhookDeliveryDoc:
        doc = self._log.get(delivery_id)
        if doc is None or doc.tenant_id != tenant_id:
            raise NotFound("no such delivery", field="delivery_id")  # another tenant's: 404
        return doc

    def redeliver(
        self, tenant_id: str, delivery_id: str, queue: TaskQueue, sweeper_url: str, prefix: str
    ) -> WebhookDeliveryDoc:
        """Enqueue the event once more (same event, same id) and mark the entry retrying."""
        doc = self.get(tenant_id, delivery_id)
        number = doc.redeliveries + 1
        name = f"wh-{doc.id.removeprefix('evt_')}-r{number}"
        task = WebhookTask(tenant_id=doc.tenant_id, event=doc.event)
        queue.enqueue(delivery_task(sweeper_url, prefix, name, task))
        now = self._clock.now()

        def mark(current: WebhookDeliveryDoc) -> WebhookDeliveryDoc:
            return current.model_copy(
                update={
                    "state": "retrying",
                    "redeliveries": max(current.redeliveries, number),
                    "next_retry_at": now,
                }
            )

        return self._log.update(doc.id, mark)
