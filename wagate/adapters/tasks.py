"""Cloud Tasks behind ports.TaskQueue: named HTTP tasks (a reused name is TaskAlreadyExists),
schedule times, dispatch deadlines, and the authentication of the target: an OIDC token signed
as a service account in the cloud, a shared-secret header locally.

Locally the official client talks REST to wagate's Cloud Tasks emulator (WAGATE_TASKS_ENDPOINT).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
import requests.adapters
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from wagate.adapters import billing, google_errors
from wagate.adapters.guard import DependencyGuard
from wagate.errors import DependencyUnavailable, NotFound, TaskAlreadyExists
from wagate.ports import TaskSpec

INTERNAL_TOKEN_HEADER = "X-Wagate-Internal-Token"  # noqa: S105 (a header name)
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class OidcAuth:
    """Cloud: Cloud Tasks mints an OIDC token for this service account on every dispatch."""

    service_account_email: str
    audience: str | None = None


@dataclass(frozen=True)
class SharedSecretAuth:
    """Local: a header carrying the internal shared secret."""

    secret: str


TaskAuth = OidcAuth | SharedSecretAuth


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# Connections the local REST client keeps to the emulator: requests' default (10) is below the
# concurrency of the api's threads and the runner's I/O pool, and each call beyond it opened
# and dropped a connection ("Connection pool is full").
LOCAL_POOL_SIZE = 64


def make_client(endpoint: str | None) -> tasks_v2.CloudTasksClient:
    if endpoint:
        client = tasks_v2.CloudTasksClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
        # The REST transport offers no option for its requests session; this is the emulator
        # only (the cloud client speaks gRPC).
        session = getattr(client.transport, "_session", None)
        if isinstance(session, requests.Session):
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=LOCAL_POOL_SIZE))
            session.trust_env = False  # no proxy or .netrc lookups on every call to loopback
    else:
        client = tasks_v2.CloudTasksClient()
    billing.count_tasks(client)  # benchmarks only (WAGATE_COUNT_OPERATIONS)
    return client


# Vendor exceptions → wagate errors, tried in order (google_errors.translated).
_ERRORS: list[google_errors.Rule] = [
    # Over REST a duplicate name is a plain 409 (Conflict); over gRPC ALREADY_EXISTS (a
    # Conflict subclass). create_task has no other conflict.
    (gexc.Conflict, lambda what, e: TaskAlreadyExists(f"{what} already exists")),
    (gexc.NotFound, lambda what, e: NotFound(f"{what} not found")),
    (
        gexc.GoogleAPICallError,
        lambda what, e: DependencyUnavailable(f"Cloud Tasks error during {what}: {e.message}"),
    ),
    (
        (gexc.RetryError, ConnectionError, OSError),
        lambda what, e: DependencyUnavailable(f"Cloud Tasks unreachable during {what}"),
    ),
]


def translated(what: str) -> AbstractContextManager[None]:
    """Vendor exceptions → wagate errors."""
    return google_errors.translated(what, _ERRORS)


class CloudTasksQueue:
    """ports.TaskQueue on Cloud Tasks (or wagate's emulator)."""

    def __init__(
        self,
        client: tasks_v2.CloudTasksClient,
        project: str,
        location: str,
        auth: TaskAuth,
        guard: DependencyGuard | None = None,
    ) -> None:
        self._client = client
        self.guard = guard or DependencyGuard("tasks")
        self._project = project
        self._location = location
        self._auth = auth

    def queue_path(self, queue: str) -> str:
        return str(self._client.queue_path(self._project, self._location, queue))

    def enqueue(self, task: TaskSpec) -> str:
        parent = self.queue_path(task.queue)
        headers = {"Content-Type": "application/json", **task.headers}
        http_request = tasks_v2.HttpRequest(
            url=task.url, http_method=tasks_v2.HttpMethod.POST, headers=headers, body=task.body
        )
        if isinstance(self._auth, OidcAuth):
            http_request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self._auth.service_account_email,
                # Receivers verify their base URL (scheme://host), not each endpoint's path.
                audience=self._auth.audience or origin(task.url),
            )
        else:
            http_request.headers[INTERNAL_TOKEN_HEADER] = self._auth.secret
        proto = tasks_v2.Task(name=f"{parent}/tasks/{task.name}", http_request=http_request)
        if task.schedule_time is not None:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(task.schedule_time)
            proto.schedule_time = ts
        if task.dispatch_deadline_s is not None:
            proto.dispatch_deadline = duration_pb2.Duration(
                seconds=int(timedelta(seconds=task.dispatch_deadline_s).total_seconds())
            )
        try:
            with self.guard.call("create_task"), translated(f"task {task.name}"):
                created = self._client.create_task(
                    parent=parent, task=proto, timeout=CALL_TIMEOUT_S
                )
        except NotFound as e:  # only the queue can be missing: a deployment fault, not bad input
            raise DependencyUnavailable(f"queue {task.queue} does not exist") from e
        return str(created.name)

    def run_now(self, queue: str, name: str) -> None:
        with self.guard.call("run_task"), translated(f"task {name}"):
            self._client.run_task(
                name=f"{self.queue_path(queue)}/tasks/{name}", timeout=CALL_TIMEOUT_S
            )

    def exists(self, queue: str, name: str) -> bool:
        try:
            with self.guard.call("get_task"), translated(f"task {name}"):
                self._client.get_task(
                    name=f"{self.queue_path(queue)}/tasks/{name}", timeout=CALL_TIMEOUT_S
                )
        except NotFound:  # done, dropped, deleted or never created
            return False
        return True

    def delete(self, queue: str, name: str) -> None:
        try:
            with self.guard.call("delete_task"), translated(f"task {name}"):
                self._client.delete_task(
                    name=f"{self.queue_path(queue)}/tasks/{name}", timeout=CALL_TIMEOUT_S
                )
        except NotFound:  # done, dropped or deleted before: gone is what was asked
            return

    def ping(self) -> None:
        with self.guard.call("ping"), translated("queues"):
            self._client.list_queues(
                parent=f"projects/{self._project}/locations/{self._location}",
                timeout=5.0,
            )
