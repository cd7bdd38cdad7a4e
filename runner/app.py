"""The runner's HTTP surface (aiohttp): task endpoints for Cloud Tasks, health for Cloud Run
and operators, metrics for Prometheus (docs/operations.md lists every field and metric).

- /healthz: the process is alive (Cloud Run's startup and liveness probes).
- /readyz: 200 only while it holds its shard lease, is not draining, and Firestore (and Cloud
  Storage, when backups go there) answered the last probe.
- /health: ok | degraded | error with the reasons; `?detailed=true` adds sessions by state,
  send backlog, circuit breakers, store latency percentiles, memory trend, backup ages
  (`&per_session=true`: every session's). Answers 503 when the status is error.
- /metrics: Prometheus text format.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest
from pydantic import BaseModel, ValidationError

from runner import http_errors
from runner.lease import LeaseKeeper
from runner.monitor import RunnerMonitor
from runner.parking import TaskRef
from runner.queries import QueryEndpoint
from runner.send_results import SendOutcome, SendResult
from runner.sending import SendHandler
from runner.shard import Shard
from wagate.adapters import billing
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.contracts import ControlTask, SendTask
from wagate.errors import Unauthenticated, ValidationFailed, WagateError
from wagate.http import render_error
from wagate.logs import get_logger
from wagate.services.monitoring import MESSAGES, SEND_TIMINGS

log = get_logger("wagate.runner.http")

SEND_RESULTS = Counter("wagate_send_results_total", "Send task outcomes", ["status"])
SESSIONS = Gauge("wagate_sessions", "Sessions on this runner by state", ["state"])
LEASE_HELD = Gauge("wagate_lease_held", "1 while this runner holds its shard lease")
CIRCUIT = Gauge(
    "wagate_circuit_state",
    "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open",
    ["dependency"],
)
BACKLOG = Gauge("wagate_send_backlog", "Pending messages of this shard (last count)")
RSS = Gauge("wagate_memory_rss_bytes", "Resident memory at the last snapshot")
STORE_P99 = Gauge(
    "wagate_store_latency_p99_seconds", "Firestore call latency p99 over the rolling window"
)
BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class RunnerApp:
    def __init__(
        self, shard: Shard, lease: LeaseKeeper, sender: SendHandler, monitor: RunnerMonitor
    ) -> None:
        self.shard = shard
        self.lease = lease
        self.sender = sender
        self.monitor = monitor

    def build(self) -> web.Application:
        http_errors.install()  # JSON even for what aiohttp refuses before a handler runs
        app = web.Application(
            client_max_size=2 * 1024 * 1024, middlewares=[http_errors.json_http_errors]
        )
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/health", self.health),
                web.get("/metrics", self.metrics),
                web.post("/tasks/send", self.send),
                web.post("/tasks/control", self.control),
                # The api's questions for a live socket (number checks, groups).
                *QueryEndpoint(self.shard, self.lease, self._authorize_api).routes(),
            ]
        )
        return app

    # ------------------------------------------------------------ internal auth

    def _authorize_api(self, request: web.Request) -> None:
        """The api's queries: its own service account's token in the cloud."""
        self._authorize(request, {self.shard.ctx.settings.api_service_account or ""})

    def _authorize(self, request: web.Request, callers: set[str] | None = None) -> None:
        """A Google-signed OIDC token of Cloud Tasks' account (or of `callers`) in the cloud,
        the internal secret header locally."""
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
                allowed_emails=callers or {settings.tasks_service_account or ""},
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
        billing.count("tasks.dispatch|send|attempt")  # Cloud Tasks bills each delivery attempt
        try:
            task: SendTask = await self._parse(request, SendTask)
        except WagateError as e:
            return self._error(e, request)
        supervisor = self.shard.supervisors.get(task.session_id)
        try:
            outcome = await self.sender.handle(
                task, supervisor, draining=self.shard.draining, ref=_task_ref(request)
            )
        except Exception as e:  # never a stack trace to the queue; it retries
            return self._error(e, request)
        SEND_RESULTS.labels(str(outcome.status)).inc()
        self._count(task, outcome)
        headers = {}
        if outcome.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(outcome.retry_after)))
        return web.json_response(outcome.body, status=outcome.status, headers=headers)

    def _count(self, task: SendTask, result: SendResult) -> None:
        if result.outcome == SendOutcome.DEDUPLICATED:
            MESSAGES.labels("deduplicated").inc()
        elif result.outcome in (SendOutcome.SENT, SendOutcome.SENT_JOURNALED):
            assert result.wa_id is not None
            SEND_TIMINGS.sent(result.wa_id, task.created_at, self.shard.ctx.clock.now())
        elif result.outcome in (SendOutcome.FAILED, SendOutcome.DEAD):
            MESSAGES.labels(result.outcome.value).inc()

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
        reasons = self.monitor.unready_reasons()
        if reasons:
            return web.json_response({"status": "not_ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready", "shard": self.shard.ctx.shard})

    async def health(self, request: web.Request) -> web.Response:
        detailed = request.query.get("detailed") == "true"
        body = self.monitor.health(
            detailed=detailed, per_session=request.query.get("per_session") == "true"
        )
        if detailed:  # kept for the benchmarks and older tooling
            body["sent"] = self.sender.sent
            body["deduplicated"] = self.sender.deduplicated
            body["inbound"] = self.shard.inbound.inbound_count
            body["receipts"] = self.shard.inbound.receipt_count
        return web.Response(
            text=json.dumps(body),
            content_type="application/json",
            status=503 if body["status"] == "error" else 200,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        LEASE_HELD.set(1 if self.lease.held else 0)
        SESSIONS.clear()
        for state, count in self.shard.by_state().items():
            SESSIONS.labels(state).set(count)
        for breaker in self.monitor.breakers:
            CIRCUIT.labels(breaker.name).set(BREAKER_VALUE.get(breaker.state, 0))
        if self.monitor.backlog is not None:
            BACKLOG.set(self.monitor.backlog)
        if self.monitor.memory.latest is not None:
            RSS.set(self.monitor.memory.latest)
        p99 = self.monitor.latency.percentiles("firestore").p99
        if p99 is not None:
            STORE_P99.set(p99)
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def _task_ref(request: web.Request) -> TaskRef | None:
    """The dispatched task's queue and name, as Cloud Tasks sends them."""
    queue = request.headers.get("X-CloudTasks-QueueName")
    name = request.headers.get("X-CloudTasks-TaskName")
    return TaskRef(queue, name) if queue and name else None
