"""The Cloud Tasks v2 REST surface, as the official client's REST transport calls it.

Paths follow the API's HTTP bindings (``/v2/{parent=projects/*/locations/*}/queues``,
``…/queues/*:pause``, ``…/tasks/*:run`` …); every failure is a Google JSON error body.
Methods the emulator does not reproduce (batch task calls, IAM, CMEK, locations) answer
UNIMPLEMENTED rather than pretending.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from aiohttp import web

from emulators.cloud_tasks import protojson, wire
from emulators.cloud_tasks.emulator import Emulator, NewTask
from emulators.cloud_tasks.errors import ApiError, Code, invalid, unimplemented
from emulators.cloud_tasks.model import QueueState, Task, View
from emulators.cloud_tasks.names import QueuePath, location_name, queue_path
from emulators.cloud_tasks.queue import Queue

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)
MAX_QUEUE_PAGE = 9800
MAX_TASK_PAGE = 1000
_STATE_FILTER = re.compile(r"\s*state\s*[:=]\s*\"?([A-Z_]+)\"?\s*")

_LOCATION = "/v2/projects/{project:[^/]+}/locations/{location:[^/:]+}"
_QUEUES = _LOCATION + "/queues"
_QUEUE = _QUEUES + "/{queue:[^/:]+}"
_TASKS = _QUEUE + "/tasks"
_TASK = _TASKS + "/{task:[^/:]+}"


# --------------------------------------------------------------------------- plumbing


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


def _ints(request: web.Request) -> bool:
    """The REST transport asks for enums as numbers: ``$alt=json;enum-encoding=int``."""
    return "enum-encoding=int" in request.query.get("$alt", "")


async def _body(request: web.Request) -> Mapping[str, object]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise invalid(f"Invalid JSON payload received. {e}") from e
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received: expected an object.")
    return body


def _ok(payload: Mapping[str, object]) -> web.Response:
    return web.json_response(payload)


def _error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.code.http_status)


def _queue_path_of(request: web.Request) -> QueuePath:
    info = request.match_info
    return queue_path(info["project"], info["location"], info["queue"])


def _page(
    items: Sequence[T], key: Callable[[T], str], request: web.Request, max_size: int
) -> tuple[Sequence[T], str]:
    size = protojson.parse_int(request.query.get("pageSize", "0"), "pageSize")
    if size < 0:
        raise invalid("pageSize must not be negative.")
    size = min(size or max_size, max_size)
    token = request.query.get("pageToken", "")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise invalid("Invalid page token.") from e
        items = [item for item in items if key(item) > after]
    page = items[:size]
    next_token = ""
    if len(items) > size:
        next_token = base64.urlsafe_b64encode(key(page[-1]).encode()).decode()
    return page, next_token


def _queue_json(queue: Queue, request: web.Request) -> dict[str, object]:
    return wire.queue_json(
        queue.path.name, queue.config, queue.state, queue.purge_time, ints=_ints(request)
    )


def _task_json(task: Task, view: View, request: web.Request) -> dict[str, object]:
    return wire.task_json(task, view, task.retry_config, ints=_ints(request))


@web.middleware
async def google_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error(e)
    except web.HTTPException as e:
        if e.status == 404:
            return _error(ApiError(Code.NOT_FOUND, f"No such resource: {request.path}"))
        return _error(ApiError(Code.INVALID_ARGUMENT, e.reason))
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error(ApiError(Code.INTERNAL, "Internal error in the Cloud Tasks emulator."))


# --------------------------------------------------------------------------- queues


async def create_queue(request: web.Request) -> web.Response:
    info = request.match_info
    parent = location_name(info["project"], info["location"])
    body = await _body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.startswith(parent + "/queues/"):
        raise invalid(
            'Queue name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>'
            '/queues/<QUEUE_ID>".'
        )
    path = queue_path(info["project"], info["location"], name.removeprefix(parent + "/queues/"))
    queue = _emulator(request).create_queue(path, wire.parse_queue_config(body))
    return _ok(_queue_json(queue, request))


async def list_queues(request: web.Request) -> web.Response:
    info = request.match_info
    queues = _emulator(request).list_queues(location_name(info["project"], info["location"]))
    wanted = request.query.get("filter", "").strip()
    if wanted:
        match = _STATE_FILTER.fullmatch(wanted)
        if match is None or match[1] not in QueueState.__members__:
            raise invalid(f'Unsupported filter "{wanted}": the emulator filters on state only.')
        queues = [q for q in queues if q.state.name == match[1]]
    page, next_token = _page(queues, lambda q: q.path.name, request, MAX_QUEUE_PAGE)
    payload: dict[str, object] = {"queues": [_queue_json(q, request) for q in page]}
    if next_token:
        payload["nextPageToken"] = next_token
    return _ok(payload)


async def get_queue(request: web.Request) -> web.Response:
    return _ok(_queue_json(_emulator(request).queue(_queue_path_of(request)), request))


async def update_queue(request: web.Request) -> web.Response:
    path = _queue_path_of(request)
    body = await _body(request)
    name = body.get("name")
    if name not in (None, "", path.name):
        raise invalid("The queue name cannot be changed.")
    mask = [p for p in request.query.get("updateMask", "").split(",") if p.strip()]
    emulator = _emulator(request)
    current = emulator.find_queue(path)
    config = wire.merge_queue_update(current.config if current else None, body, mask)
    return _ok(_queue_json(emulator.update_queue(path, config), request))


async def delete_queue(request: web.Request) -> web.Response:
    await _emulator(request).delete_queue(_queue_path_of(request))
    return _ok({})


async def pause_queue(request: web.Request) -> web.Response:
    queue = _emulator(request).queue(_queue_path_of(request))
    queue.pause()
    return _ok(_queue_json(queue, request))


async def resume_queue(request: web.Request) -> web.Response:
    queue = _emulator(request).queue(_queue_path_of(request))
    queue.resume()
    return _ok(_queue_json(queue, request))


async def purge_queue(request: web.Request) -> web.Response:
    queue = _emulator(request).queue(_queue_path_of(request))
    queue.purge()
    return _ok(_queue_json(queue, request))


# --------------------------------------------------------------------------- tasks


async def create_task(request: web.Request) -> web.Response:
    path = _queue_path_of(request)
    body = await _body(request)
    task_in = body.get("task")
    if not isinstance(task_in, Mapping):
        raise invalid("CreateTaskRequest.task is required.")
    if task_in.get("appEngineHttpRequest") is not None:
        raise unimplemented("Task.appEngineHttpRequest (App Engine targets)")
    if task_in.get("httpRequest") is None:
        raise invalid("Task.httpRequest is required.")
    name = task_in.get("name")
    schedule = task_in.get("scheduleTime")
    deadline = task_in.get("dispatchDeadline")
    retry = task_in.get("retryConfig")
    new = NewTask(
        name=name if isinstance(name, str) and name else None,
        target=wire.parse_http_request(task_in["httpRequest"]),
        schedule_time=None
        if schedule is None
        else protojson.parse_timestamp(schedule, "scheduleTime"),
        dispatch_deadline_s=(
            None if deadline is None else protojson.parse_duration(deadline, "dispatchDeadline")
        ),
        retry_config=retry if isinstance(retry, Mapping) else None,
    )
    emulator = _emulator(request)
    task = emulator.create_task(path, new)
    view = wire.parse_view(body.get("responseView"))
    return _ok(_task_json(task, view, request))


async def list_tasks(request: web.Request) -> web.Response:
    path = _queue_path_of(request)
    view = wire.parse_view(request.query.get("responseView"))
    tasks = _emulator(request).list_tasks(path)
    page, next_token = _page(tasks, lambda t: t.task_id, request, MAX_TASK_PAGE)
    payload: dict[str, object] = {"tasks": [_task_json(t, view, request) for t in page]}
    if next_token:
        payload["nextPageToken"] = next_token
    return _ok(payload)


async def get_task(request: web.Request) -> web.Response:
    path = _queue_path_of(request)
    emulator = _emulator(request)
    task = emulator.task(path, request.match_info["task"])
    view = wire.parse_view(request.query.get("responseView"))
    return _ok(_task_json(task, view, request))


async def delete_task(request: web.Request) -> web.Response:
    _emulator(request).delete_task(_queue_path_of(request), request.match_info["task"])
    return _ok({})


async def run_task(request: web.Request) -> web.Response:
    path = _queue_path_of(request)
    body = await _body(request)
    emulator = _emulator(request)
    task = emulator.run_task(path, request.match_info["task"])
    view = wire.parse_view(body.get("responseView"))
    return _ok(_task_json(task, view, request))


# --------------------------------------------------------------------------- the rest


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def not_implemented(request: web.Request) -> web.Response:
    raise unimplemented(f"{request.method} {request.path}")


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[google_errors], client_max_size=2 * 1024 * 1024)
    app[EMULATOR] = emulator
    app.router.add_get("/healthz", healthz)
    app.router.add_post(_QUEUES, create_queue)
    app.router.add_get(_QUEUES, list_queues)
    app.router.add_get(_QUEUE, get_queue)
    app.router.add_patch(_QUEUE, update_queue)
    app.router.add_delete(_QUEUE, delete_queue)
    app.router.add_post(_QUEUE + ":pause", pause_queue)
    app.router.add_post(_QUEUE + ":resume", resume_queue)
    app.router.add_post(_QUEUE + ":purge", purge_queue)
    app.router.add_post(_TASKS, create_task)
    app.router.add_get(_TASKS, list_tasks)
    app.router.add_get(_TASK, get_task)
    app.router.add_delete(_TASK, delete_task)
    app.router.add_post(_TASK + ":run", run_task)
    app.router.add_route("*", "/v2/{tail:.*}", not_implemented)
    return app
