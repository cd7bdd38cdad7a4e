"""What a task is: its HTTP request, schedule, and the counters Cloud Tasks reports about it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from emulators.cloud_tasks.config import RetryConfig
from emulators.cloud_tasks.errors import Code


class HttpMethod(enum.IntEnum):
    POST = 1
    GET = 2
    HEAD = 3
    PUT = 4
    DELETE = 5
    PATCH = 6
    OPTIONS = 7


class View(enum.IntEnum):
    BASIC = 1
    FULL = 2


class QueueState(enum.IntEnum):
    RUNNING = 1
    PAUSED = 2


@dataclass(frozen=True)
class OidcToken:
    service_account_email: str
    audience: str  # "" = the task's URL


@dataclass(frozen=True)
class OAuthToken:
    service_account_email: str
    scope: str


@dataclass(frozen=True)
class HttpTarget:
    url: str
    method: HttpMethod
    headers: Mapping[str, str]  # as stored: Cloud Tasks' own headers already filtered out
    body: bytes
    oidc_token: OidcToken | None = None
    oauth_token: OAuthToken | None = None


@dataclass
class Attempt:
    schedule_time: float
    dispatch_time: float
    response_time: float | None = None
    status: Code | None = None
    status_message: str = ""


@dataclass(eq=False)
class Task:
    task_id: str
    name: str
    target: HttpTarget
    create_time: float
    schedule_time: float
    dispatch_deadline_s: float
    retry_config: RetryConfig | None  # task-level override of the queue's
    dispatch_count: int = 0
    response_count: int = 0
    # Responses other than 5xx: what X-CloudTasks-TaskExecutionCount reports for HTTP tasks.
    execution_count: int = 0
    first_dispatch_time: float | None = None
    last_attempt: Attempt | None = None
    previous_response: int | None = None
    inflight: int = 0
    alive: bool = True
    heap_seq: int = field(default=-1, repr=False)  # seq of its live schedule entry, -1 = none
