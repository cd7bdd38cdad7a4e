"""The Cloud Tasks service itself: queues by name, the RPCs on them, and the rules that decide
what a task may be (names, deadlines, schedule, size, headers) before it is accepted.

Transport-free: the HTTP layer (server.py) parses requests into these calls and renders what
they return; every refusal is an ApiError carrying the code real Cloud Tasks would answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from emulators.cloud_tasks import config as cfg
from emulators.cloud_tasks import oidc, protojson, wire
from emulators.cloud_tasks.delivery import HttpSender
from emulators.cloud_tasks.errors import (
    invalid,
    queue_exists,
    queue_not_found,
    task_exists,
    task_not_found,
    task_recently_gone,
)
from emulators.cloud_tasks.model import HttpMethod, HttpTarget, Task
from emulators.cloud_tasks.names import (
    QueuePath,
    SpentNames,
    check_task_id,
    generated_task_id,
    task_id_from_name,
)
from emulators.cloud_tasks.queue import Queue

MAX_TASK_BYTES = 1024 * 1024  # HTTP target tasks
MAX_HEADER_BYTES = 80 * 1024
MAX_URL_LENGTH = 2083
MAX_SCHEDULE_AHEAD_S = 30 * 24 * 3600.0
_BODY_METHODS = frozenset({HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH})
# Headers Cloud Tasks computes or reserves: a task's own values for them are dropped.
_RESERVED_HEADERS = frozenset({"host", "content-length", "user-agent"})
_RESERVED_PREFIXES = ("x-cloudtasks-", "x-google-", "x-appengine-")


@dataclass(frozen=True)
class Settings:
    name_retention_s: float = 3600.0
    name_capacity: int = 500_000
    min_dispatch_deadline_s: float = cfg.MIN_DISPATCH_DEADLINE_S
    oidc_secret: str = oidc.DEFAULT_SECRET
    max_connections: int = 4096


@dataclass(frozen=True)
class NewTask:
    """A CreateTask request, parsed."""

    name: str | None
    target: HttpTarget
    schedule_time: float | None
    dispatch_deadline_s: float | None
    retry_config: Mapping[str, object] | None


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept = {
        name: value
        for name, value in headers.items()
        if name.lower() not in _RESERVED_HEADERS and not name.lower().startswith(_RESERVED_PREFIXES)
    }
    kept["User-Agent"] = "Google-Cloud-Tasks"
    return kept


class Emulator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queues: dict[str, Queue] = {}
        self.spent = SpentNames(settings.name_retention_s, settings.name_capacity)
        self.sender = HttpSender(settings.max_connections)

    async def start(self) -> None:
        await self.sender.start()

    async def stop(self) -> None:
        await asyncio.gather(*(q.shutdown() for q in self.queues.values()))
        self.queues.clear()
        await self.sender.close()

    # ------------------------------------------------------------------ queues

    def _new_queue(self, path: QueuePath, config: cfg.QueueConfig) -> Queue:
        queue = Queue(
            path,
            config,
            sender=self.sender,
            spent=self.spent,
            oidc_secret=self.settings.oidc_secret,
        )
        self.queues[path.name] = queue
        return queue

    def create_queue(self, path: QueuePath, config: cfg.QueueConfig) -> Queue:
        if path.name in self.queues:
            raise queue_exists()
        return self._new_queue(path, config)

    def find_queue(self, path: QueuePath) -> Queue | None:
        return self.queues.get(path.name)

    def queue(self, path: QueuePath) -> Queue:
        queue = self.queues.get(path.name)
        if queue is None:
            raise queue_not_found()
        return queue

    def list_queues(self, parent: str) -> list[Queue]:
        prefix = parent + "/queues/"
        return [q for name, q in sorted(self.queues.items()) if name.startswith(prefix)]

    def update_queue(self, path: QueuePath, config: cfg.QueueConfig) -> Queue:
        """UpdateQueue creates the queue when it does not exist."""
        queue = self.queues.get(path.name)
        if queue is None:
            return self._new_queue(path, config)
        queue.reconfigure(config)
        return queue

    async def delete_queue(self, path: QueuePath) -> None:
        queue = self.queue(path)
        del self.queues[path.name]
        await queue.close()

    # ------------------------------------------------------------------ tasks

    def create_task(self, path: QueuePath, new: NewTask) -> Task:
        queue = self.queue(path)
        now = time.time()
        if new.name:
            task_id = task_id_from_name(path, new.name)
            if task_id in queue.tasks or self.spent.recently_used(path.task_name(task_id), now):
                raise task_exists()
        else:
            task_id = generated_task_id()
            while task_id in queue.tasks:
                task_id = generated_task_id()
        target = self._checked_target(new.target)
        deadline = self._checked_deadline(new.dispatch_deadline_s)
        schedule_time = now if new.schedule_time is None else max(now, new.schedule_time)
        if schedule_time - now > MAX_SCHEDULE_AHEAD_S:
            raise invalid("Task.scheduleTime must be at most 30 days in the future.")
        retry = None
        if new.retry_config is not None:
            retry = wire.parse_retry_config(new.retry_config, queue.config.retry)
        task = Task(
            task_id=task_id,
            name=path.task_name(task_id),
            target=target,
            create_time=now,
            schedule_time=schedule_time,
            dispatch_deadline_s=deadline,
            retry_config=retry,
        )
        queue.add(task)
        return task

    def _checked_target(self, target: HttpTarget) -> HttpTarget:
        if not target.url:
            raise invalid("HttpRequest.url is required.")
        if not target.url.startswith(("http://", "https://")):
            raise invalid('HttpRequest.url must begin with "http://" or "https://".')
        if len(target.url) > MAX_URL_LENGTH:
            raise invalid(f"HttpRequest.url must be at most {MAX_URL_LENGTH} characters.")
        if target.body and target.method not in _BODY_METHODS:
            raise invalid(
                "A request body is allowed only if the HTTP method is POST, PUT, or PATCH."
            )
        if target.oidc_token is not None and target.oauth_token is not None:
            raise invalid("Only one of oauthToken and oidcToken may be set.")
        headers = stored_headers(target.headers)
        header_bytes = sum(len(k) + len(v) for k, v in headers.items())
        if header_bytes >= MAX_HEADER_BYTES:
            raise invalid("The size of the task's headers must be less than 80KB.")
        if header_bytes + len(target.body) + len(target.url) > MAX_TASK_BYTES:
            raise invalid(f"Task size exceeds the maximum of {MAX_TASK_BYTES} bytes.")
        return HttpTarget(
            url=target.url,
            method=target.method,
            headers=headers,
            body=target.body,
            oidc_token=target.oidc_token,
            oauth_token=target.oauth_token,
        )

    def _checked_deadline(self, deadline_s: float | None) -> float:
        if deadline_s is None or deadline_s == 0:
            return cfg.DEFAULT_DISPATCH_DEADLINE_S
        low, high = self.settings.min_dispatch_deadline_s, cfg.MAX_DISPATCH_DEADLINE_S
        if not low <= deadline_s <= high:
            raise invalid(
                f"Task.dispatchDeadline must be between {protojson.format_duration(low)} and "
                f"{protojson.format_duration(high)}, got {protojson.format_duration(deadline_s)}."
            )
        return deadline_s

    def task(self, path: QueuePath, task_id: str) -> Task:
        check_task_id(task_id)
        task = self.queue(path).tasks.get(task_id)
        if task is None:
            if self.spent.recently_used(path.task_name(task_id), time.time()):
                raise task_recently_gone()
            raise task_not_found()
        return task

    def list_tasks(self, path: QueuePath) -> list[Task]:
        return [task for _, task in sorted(self.queue(path).tasks.items())]

    def delete_task(self, path: QueuePath, task_id: str) -> None:
        queue, task = self._stored_task(path, task_id)
        queue.delete(task)

    def run_task(self, path: QueuePath, task_id: str) -> Task:
        queue, task = self._stored_task(path, task_id)
        queue.run_now(task)
        return task

    def _stored_task(self, path: QueuePath, task_id: str) -> tuple[Queue, Task]:
        check_task_id(task_id)
        queue = self.queue(path)
        task = queue.tasks.get(task_id)
        if task is None:
            raise task_not_found()
        return queue, task
