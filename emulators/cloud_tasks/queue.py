"""One queue at run time: its tasks, its schedule, and the dispatch loop that honours its
state, rate limit and concurrency limit, then retries or deletes each task after its attempt.

Scheduling is a heap of (schedule time, sequence, task) entries with lazy deletion, and one
pump coroutine per queue that sleeps until the earliest of: the next task falls due, a token
is back in the bucket, or something changed (new task, finished attempt, resume, update).
There is no polling loop and no thread per task; each attempt is an asyncio task.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Iterable

from emulators.cloud_tasks import oidc
from emulators.cloud_tasks.config import QueueConfig, RetryConfig
from emulators.cloud_tasks.delivery import Delivery, HttpSender, Outcome
from emulators.cloud_tasks.model import Attempt, QueueState, Task
from emulators.cloud_tasks.names import QueuePath, SpentNames
from emulators.cloud_tasks.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# Dispatches started in one go before the pump yields to the event loop.
_BATCH = 256


class Queue:
    def __init__(
        self,
        path: QueuePath,
        config: QueueConfig,
        *,
        sender: HttpSender,
        spent: SpentNames,
        oidc_secret: str,
    ) -> None:
        self.path = path
        self.config = config
        self.state = QueueState.RUNNING
        self.purge_time: float | None = None
        self.tasks: dict[str, Task] = {}
        self._sender = sender
        self._spent = spent
        self._oidc_secret = oidc_secret
        self._heap: list[tuple[float, int, Task]] = []
        self._seq = itertools.count()
        self._inflight = 0
        limits = config.rate_limits
        self._bucket = TokenBucket(
            limits.max_dispatches_per_second, limits.max_burst_size, time.monotonic()
        )
        self._wake = asyncio.Event()
        self._attempts: set[asyncio.Task[None]] = set()
        self._pump = asyncio.get_running_loop().create_task(
            self._run_pump(), name=f"pump {path.name}"
        )

    # ------------------------------------------------------------------ admin operations

    def reconfigure(self, config: QueueConfig) -> None:
        self.config = config
        limits = config.rate_limits
        self._bucket.reconfigure(
            limits.max_dispatches_per_second, limits.max_burst_size, time.monotonic()
        )
        self._wake.set()

    def pause(self) -> None:
        self.state = QueueState.PAUSED

    def resume(self) -> None:
        self.state = QueueState.RUNNING
        self._wake.set()

    def purge(self) -> None:
        now = time.time()
        self.purge_time = now
        self._forget(list(self.tasks.values()), now)
        self._heap.clear()

    async def close(self) -> None:
        """Deleted: its tasks are gone, attempts in flight finish but change nothing."""
        self._forget(list(self.tasks.values()), time.time())
        self._heap.clear()
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)

    async def shutdown(self) -> None:
        """The emulator stops: cancel everything, remember nothing."""
        self._pump.cancel()
        for attempt in list(self._attempts):
            attempt.cancel()
        await asyncio.gather(self._pump, *self._attempts, return_exceptions=True)

    # ------------------------------------------------------------------ task operations

    def add(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self._schedule(task)

    def delete(self, task: Task) -> None:
        self._forget([task], time.time())

    def run_now(self, task: Task) -> None:
        """RunTask: dispatch at once, whatever the state, rate limit or running attempts."""
        task.heap_seq = -1
        self._start_attempt(task, forced=True)

    # ------------------------------------------------------------------ dispatch

    def _schedule(self, task: Task) -> None:
        seq = next(self._seq)
        task.heap_seq = seq
        heapq.heappush(self._heap, (task.schedule_time, seq, task))
        if self._heap[0][1] == seq:
            self._wake.set()

    def _forget(self, tasks: Iterable[Task], now: float) -> None:
        for task in tasks:
            task.alive = False
            task.heap_seq = -1
            self.tasks.pop(task.task_id, None)
            self._spent.remember(task.name, now)

    async def _run_pump(self) -> None:
        while True:
            self._wake.clear()
            wait = self._dispatch_due()
            if wait is None:
                await self._wake.wait()
            elif wait <= 0:
                await asyncio.sleep(0)
            else:
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    def _dispatch_due(self) -> float | None:
        """Start every attempt that may start now; then the seconds until one more could
        (None: only a change can make one possible, 0: a batch was started, yield first)."""
        limits = self.config.rate_limits
        for _ in range(_BATCH):
            if self.state is not QueueState.RUNNING:
                return None
            if self._inflight >= limits.max_concurrent_dispatches:
                return None
            while self._heap and self._heap[0][2].heap_seq != self._heap[0][1]:
                heapq.heappop(self._heap)  # superseded entry (deleted, rescheduled, run)
            if not self._heap:
                return None
            due_in = self._heap[0][0] - time.time()
            if due_in > 0:
                return due_in
            token_in = self._bucket.take(time.monotonic())
            if token_in > 0:
                return token_in
            _, _, task = heapq.heappop(self._heap)
            task.heap_seq = -1
            self._start_attempt(task, forced=False)
        return 0.0

    def _start_attempt(self, task: Task, *, forced: bool) -> None:
        now = time.time()
        task.dispatch_count += 1
        task.inflight += 1
        if not forced:
            self._inflight += 1
        if task.first_dispatch_time is None:
            task.first_dispatch_time = now
        attempt = Attempt(schedule_time=task.schedule_time, dispatch_time=now)
        task.last_attempt = attempt
        delivery = Delivery(
            method=task.target.method.name,
            url=task.target.url,
            headers=self._dispatch_headers(task, now),
            body=task.target.body,
            deadline_s=task.dispatch_deadline_s,
        )
        job = asyncio.get_running_loop().create_task(self._attempt(task, attempt, delivery, forced))
        self._attempts.add(job)
        job.add_done_callback(self._attempts.discard)

    def _dispatch_headers(self, task: Task, now: float) -> dict[str, str]:
        target = task.target
        headers = dict(target.headers)
        headers["X-CloudTasks-QueueName"] = self.path.queue_id
        headers["X-CloudTasks-TaskName"] = task.task_id
        headers["X-CloudTasks-TaskRetryCount"] = str(task.dispatch_count - 1)
        headers["X-CloudTasks-TaskExecutionCount"] = str(task.execution_count)
        headers["X-CloudTasks-TaskETA"] = f"{task.schedule_time:.6f}"
        if task.previous_response is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.previous_response)
            headers["X-CloudTasks-TaskRetryReason"] = ""
        if target.oidc_token is not None:
            token = oidc.mint_id_token(
                self._oidc_secret,
                target.oidc_token.service_account_email,
                target.oidc_token.audience or target.url,
                now,
            )
            headers["Authorization"] = f"Bearer {token}"
        elif target.oauth_token is not None:
            # Emulator only: an opaque stand-in for a Google access token.
            email = target.oauth_token.service_account_email
            headers["Authorization"] = f"Bearer emulator-oauth-token.{email}"
        return headers

    async def _attempt(
        self, task: Task, attempt: Attempt, delivery: Delivery, forced: bool
    ) -> None:
        outcome = await self._sender.send(delivery)
        self._settle(task, attempt, outcome, forced)

    def _settle(self, task: Task, attempt: Attempt, outcome: Outcome, forced: bool) -> None:
        now = time.time()
        task.inflight -= 1
        if not forced:
            # Only a full queue's pump waits for attempts to finish; others sleep on time.
            if self._inflight >= self.config.rate_limits.max_concurrent_dispatches:
                self._wake.set()
            self._inflight -= 1
        attempt.response_time = now
        attempt.status = outcome.code
        attempt.status_message = outcome.message
        if outcome.http_status is None:
            task.previous_response = None
        else:
            task.response_count += 1
            task.previous_response = outcome.http_status
            if outcome.http_status < 500:
                task.execution_count += 1
        if not task.alive:
            return
        if outcome.succeeded:
            log.debug("task %s done after %d attempt(s)", task.name, task.dispatch_count)
            self._forget([task], now)
            return
        log.debug("task %s attempt %d failed: %s", task.name, task.dispatch_count, outcome.message)
        if task.inflight > 0:
            return  # a RunTask attempt is still out; its outcome decides
        retry = self.retry_config_of(task)
        first = task.first_dispatch_time if task.first_dispatch_time is not None else now
        if retry.gives_up(task.dispatch_count, now - first):
            log.warning(
                "task %s dropped after %d attempt(s) over %.1f s; last: %s",
                task.name,
                task.dispatch_count,
                now - first,
                outcome.message,
            )
            self._forget([task], now)
            return
        task.schedule_time = now + retry.delay_after(task.dispatch_count)
        self._schedule(task)

    def retry_config_of(self, task: Task) -> RetryConfig:
        return task.retry_config or self.config.retry
