"""The sweeper function: reconciliation every minute (/sweep: stuck messages, dead letters
growing, session alerts whose cause is gone), maintenance every hour (/maintenance), and the
deliveries of the webhook queue (/webhooks/deliver for tenants, /alerts/deliver for operators).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from functions import auth
from functions.app import Gateway, gateway
from functions.web import Call, Router
from wagate.contracts import AlertNotice, SessionDoc, WebhookTask
from wagate.errors import DependencyUnavailable, WagateError
from wagate.logs import get_logger
from wagate.services.alerts import ALERT_DELIVER_PATH, Alerts, AlertWebhook, QueuedAlertNotifier
from wagate.services.maintenance import Maintenance
from wagate.services.sweeper import DeadLetterWatch, Sweeper
from wagate.wiring import retention_of

router = Router()
log = get_logger("wagate.sweeper")


def alerts_of(g: Gateway) -> Alerts:
    notifier = QueuedAlertNotifier(g.queue, g.settings.queue_prefix, g.settings.sweeper_url)
    return Alerts(g.store, g.clock, notifier)


@router.route("/healthz", methods=["GET"])
def healthz(call: Call) -> Any:
    return {"status": "ok"}


@router.route("/sweep", methods=["POST"])
def sweep(call: Call) -> Any:
    g = gateway()
    auth.internal(call, g.settings)
    report = Sweeper(
        g.store,
        g.outbox,
        g.clock,
        stuck_after=timedelta(seconds=g.settings.sweep_stuck_after_s),
    ).sweep()
    result: dict[str, Any] = dataclasses.asdict(report)
    alerts = alerts_of(g)
    # The re-enqueue above is what must not be lost; the checks below only report.
    try:
        reading = DeadLetterWatch(g.store, g.clock, alerts).check()
        result["dead_letters"] = {"count": reading.count, "growth": reading.growth}
        result["alerts_resolved"] = alerts.resolve_cleared(
            g.store.collection("sessions", SessionDoc)
        )
    except WagateError as e:
        log.warning("sweep checks failed", error=e.message)
        result["checks_error"] = e.message
    return result


@router.route("/maintenance", methods=["POST"])
def maintenance(call: Call) -> Any:
    """Prune by retention, age key material, remove orphan backups (docs/operations.md).
    `?dry_run=true` counts without deleting."""
    g = gateway()
    auth.internal(call, g.settings)
    dry_run = call.request.args.get("dry_run", "false").lower() in ("1", "true", "yes")
    report = Maintenance(
        g.store, g.buckets.backups(), g.clock, retention_of(g.settings), alerts=alerts_of(g)
    ).run(dry_run=dry_run)
    return report.model_dump(mode="json")


@router.route("/webhooks/deliver", methods=["POST"])
def deliver_webhook(call: Call) -> Any:
    g = gateway()
    auth.internal(call, g.settings)
    task = call.json_body(WebhookTask)
    if g.webhooks is None:
        raise DependencyUnavailable("WAGATE_BACKUP_KEYS is not configured: cannot sign webhooks")
    retry = call.request.headers.get("X-CloudTasks-TaskRetryCount", "0")
    status = g.webhooks.deliver(task, retry=int(retry) if retry.isdigit() else 0)
    return {"delivered": task.event.id, "receiver_status": status}


@router.route(ALERT_DELIVER_PATH, methods=["POST"])
def deliver_alert(call: Call) -> Any:
    g = gateway()
    auth.internal(call, g.settings)
    notice = call.json_body(AlertNotice)
    secret = g.settings.alert_webhook_secret
    webhook = AlertWebhook(
        g.settings.alert_webhook_url,
        secret.get_secret_value() if secret else None,
        g.post_json,
    )
    status = webhook.deliver(notice)
    if status is None:
        return {"delivered": False, "reason": "no alert webhook is configured"}
    return {"delivered": True, "receiver_status": status}
