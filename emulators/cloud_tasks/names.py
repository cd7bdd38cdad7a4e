"""Resource names, and the memory of task names that finished or were deleted.

Cloud Tasks refuses a task name that exists or existed recently (the basis of task
de-duplication), so the emulator remembers spent names for a configurable retention, in a
bounded structure: names expire in the order they were spent, and past the capacity the oldest
are forgotten early (with a warning) rather than letting memory grow without limit.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import deque
from dataclasses import dataclass

from emulators.cloud_tasks.errors import invalid

log = logging.getLogger(__name__)

_PROJECT = r"[A-Za-z0-9:.\-]+"
_LOCATION = r"[A-Za-z0-9\-]+"
QUEUE_ID = re.compile(r"[A-Za-z0-9\-]{1,100}")
TASK_ID = re.compile(r"[A-Za-z0-9_\-]{1,500}")
_LOCATION_NAME = re.compile(rf"projects/({_PROJECT})/locations/({_LOCATION})")


@dataclass(frozen=True)
class QueuePath:
    project: str
    location: str
    queue_id: str

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def name(self) -> str:
        return f"{self.parent}/queues/{self.queue_id}"

    def task_name(self, task_id: str) -> str:
        return f"{self.name}/tasks/{task_id}"


def location_name(project: str, location: str) -> str:
    if _LOCATION_NAME.fullmatch(f"projects/{project}/locations/{location}") is None:
        raise invalid(f'Invalid location "projects/{project}/locations/{location}".')
    return f"projects/{project}/locations/{location}"


def queue_path(project: str, location: str, queue_id: str) -> QueuePath:
    if QUEUE_ID.fullmatch(queue_id) is None:
        raise invalid(
            'Queue name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>'
            '/queues/<QUEUE_ID>".'
        )
    location_name(project, location)
    return QueuePath(project, location, queue_id)


def task_id_from_name(queue: QueuePath, name: str) -> str:
    """The TASK_ID of a caller-chosen task name, which must sit in ``queue``."""
    prefix, sep, task_id = name.rpartition("/tasks/")
    if not sep:
        raise invalid(f'Task name "{name}" must be formatted: "{queue.name}/tasks/<TASK_ID>".')
    if prefix != queue.name:
        raise invalid(
            f"The queue name from request ('{queue.name}') must be the same as the queue name "
            f"in the named task ('{prefix}')."
        )
    check_task_id(task_id)
    return task_id


def check_task_id(task_id: str) -> None:
    if TASK_ID.fullmatch(task_id) is None:
        raise invalid(
            f'Task ID "{task_id}" can contain only letters ([A-Za-z]), numbers ([0-9]), '
            "hyphens (-), or underscores (_). Task ID must between 1 and 500 characters."
        )


def generated_task_id() -> str:
    """A system-chosen id; real ones are long decimal numbers too."""
    return str(10**19 + secrets.randbelow(9 * 10**19))


class SpentNames:
    """Full task names that may not be reused yet: finished, dropped, deleted or purged."""

    def __init__(self, retention_s: float, capacity: int) -> None:
        self._retention_s = retention_s
        self._capacity = capacity
        self._until: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()
        self._warned = False

    def __len__(self) -> int:
        return len(self._until)

    def remember(self, name: str, now: float) -> None:
        if self._retention_s <= 0:
            return
        self.expire(now)
        until = now + self._retention_s
        self._until[name] = until
        self._order.append((until, name))
        while len(self._until) > self._capacity:
            self._forget_oldest()
            if not self._warned:
                self._warned = True
                log.warning(
                    "more than %d spent task names to remember: forgetting the oldest before "
                    "their retention ends (raise --name-capacity to keep them)",
                    self._capacity,
                )

    def recently_used(self, name: str, now: float) -> bool:
        until = self._until.get(name)
        return until is not None and until > now

    def expire(self, now: float) -> None:
        while self._order and self._order[0][0] <= now:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        until, name = self._order.popleft()
        # A name spent again later has a newer entry further back; keep that one.
        if self._until.get(name) == until:
            del self._until[name]
