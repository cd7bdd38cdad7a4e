"""The runner's HTTP surface (aiohttp): task endpoints for Cloud Tasks, health for Cloud Run,
metrics for Prometheus."""

from __future__ import annotations

import hmac
import json
import os
import time
from typing import Any

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest
from pydantic import BaseModel, ValidationError

from runner.lease import LeaseKeeper
from runner.sending import SendHandler
from runner.shard import Shard
from wagate import __version__
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.contracts import ControlTask, SendTask
from wagate.errors import Unauthenticated, ValidationFailed, WagateError
from wagate.http import render_error
from wagate.logs import get_logger

log = get_logger("wagate.runner.http")

SEND_RESULTS = Counter("wagate_send_results_total", "Send task outcomes", ["status"])
SESSIONS = Gauge("wagate_sessions", "Sessions on this runner by state", ["state"])
LEASE_HELD = Gauge("wagate_lease_held", "1 while this runner holds its shard lease")


class RunnerApp:
    def __init__(self, shard: Shard, lease: LeaseKeeper, sender: SendHandler) -> None:
        self.shard = shard
        self.lease = lease
        self.sender = sender
        self.started = time.monotonic()
        self.process = psutil.Process(os.getpid())

    def build(self) -> web.Application:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/health", self.health),
                web.get("/metrics", self.metrics),
                web.post("/tasks/send", self.send),
                web.post("/tasks/control", self.control),
            ]
        )
        return app

    # ------------------------------------------------------------ internal auth

    def _authorize(self, request: web.Request) -> None:
        settings = self.shard.ctx.settings
        if settings.env == "cloud":
            from wagate.adapters.oidc import verify_google_oidc

            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ").strip()
            if not token:
                raise Unauthenticated("missing OIDC token")
            verify_google_oidc(
                token,
                audience=settings.runner_url(settings.shard_id),
                allowed_emails={settings.tasks_service_account or ""},
            )
            return
        secret = settings.internal_secret.get_secret_value() if settings.internal_secret else ""
        presented = request.headers.get(INTERNAL_TOKEN_HEADER, "")
        if not secret or not hmac.compare_digest(presented.encode(), secret.encode()):
            raise Unauthenticated("internal endpoint: missing or wrong internal token")

    async def _parse(self, request: web.Request, model: type[BaseModel]) -> Any:
        self._authorize(request)
        try:
            return model.model_validate_json(await request.read())
        except ValidationError as e:
            raise ValidationFailed(
                f"invalid task body: {e.errors()[0]['msg']}", field="body"
            ) from None

    @staticmethod
    def _error(error: Exception, request: web.Request) -> web.Response:
        request_id = request.headers.get("X-CloudTasks-TaskName", "") or "-"
        status, body, headers = render_error(error, request_id)
        if status == 500:
            log.error("task failed", exc_info=error)
        return web.Response(status=status, body=body, headers=headers)

    # ------------------------------------------------------------ tasks

    async def send(self, request: web.Request) -> web.Response:
        try:
            task: SendTask = await self._parse(request, SendTask)
        except WagateError as e:
            return self._error(e, request)
        supervisor = self.shard.supervisors.get(task.session_id)
        try:
            outcome = await self.sender.handle(task, supervisor, draining=self.shard.draining)
        except Exception as e:  # never a stack trace to the queue; it retries
            return self._error(e, request)
        SEND_RESULTS.labels(str(outcome.status)).inc()
        headers = {}
        if outcome.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(outcome.retry_after)))
        return web.json_response(outcome.body, status=outcome.status, headers=headers)

    async def control(self, request: web.Request) -> web.Response:
        try:
            task: ControlTask = await self._parse(request, ControlTask)
            status, body = await self.shard.control(task)
        except Exception as e:
            return self._error(e, request)
        headers = {"Retry-After": "5"} if status == 503 else {}
        return web.json_response(body, status=status, headers=headers)

    # ------------------------------------------------------------ health

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        reasons = []
        if not self.lease.held:
            reasons.append("does not hold the shard lease")
        if self.shard.draining:
            reasons.append("draining")
        if reasons:
            return web.json_response({"status": "not_ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready", "shard": self.shard.ctx.shard})

    async def health(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "status": "ok" if self.lease.held and not self.shard.draining else "degraded",
            "version": __version__,
            "shard": self.shard.ctx.shard,
            "holder": self.lease.holder,
            "lease_held": self.lease.held,
            "uptime_s": round(time.monotonic() - self.started, 1),
        }
        if request.query.get("detailed") == "true":
            body["sessions"] = self.shard.by_state()
            body["memory_rss_bytes"] = self.process.memory_info().rss
            body["sent"] = self.sender.sent
            body["deduplicated"] = self.sender.deduplicated
            body["inbound"] = self.shard.inbound.inbound_count
            body["receipts"] = self.shard.inbound.receipt_count
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        LEASE_HELD.set(1 if self.lease.held else 0)
        SESSIONS.clear()
        for state, count in self.shard.by_state().items():
            SESSIONS.labels(state).set(count)
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
