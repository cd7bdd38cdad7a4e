"""The sweeper (Cloud Scheduler, every minute): re-enqueues stuck messages."""

from __future__ import annotations

import dataclasses
from typing import Any

from functions import auth
from functions.app import gateway
from functions.web import Call, Router
from wagate.contracts import WebhookTask
from wagate.errors import DependencyUnavailable
from wagate.services.sweeper import Sweeper

router = Router()


@router.route("/healthz", methods=["GET"])
def healthz(call: Call) -> Any:
    return {"status": "ok"}


@router.route("/sweep", methods=["POST"])
def sweep(call: Call) -> Any:
    g = gateway()
    auth.internal(call, g.settings)
    report = Sweeper(g.store, g.outbox, g.clock).sweep()
    return dataclasses.asdict(report)


@router.route("/webhooks/deliver", methods=["POST"])
def deliver_webhook(call: Call) -> Any:
    g = gateway()
    auth.internal(call, g.settings)
    task = call.json_body(WebhookTask)
    if g.webhooks is None:
        raise DependencyUnavailable("WAGATE_BACKUP_KEYS is not configured: cannot sign webhooks")
    status = g.webhooks.deliver(task)
    return {"delivered": task.event.id, "receiver_status": status}
