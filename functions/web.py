"""HTTP plumbing shared by the functions: routing, request ids, JSON bodies, error rendering.

functions-framework hands every path to one function, so routing is a werkzeug Map here.
Every exception is rendered through wagate.http's single table; nothing else reaches a client.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map, Rule

from wagate import errors
from wagate.contracts import RECIPIENT_PATTERN
from wagate.http import render_error, status_for
from wagate.logs import get_logger

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = get_logger("wagate.http")
M = TypeVar("M", bound=BaseModel)
MAX_JSON_BYTES = 1024 * 1024
# Ids in paths and page cursors (the id of a page's last document): wagate and WhatsApp ids
# are letters, digits and a few separators. Anything else cannot name a document, and would
# reach Firestore as a malformed path (a Firestore error, not a client one).
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}")
# Path parameters that are not ids: a chat is a recipient as `to` takes it (+1555…, a JID, a LID).
PATH_PARAMETERS = {"chat": re.compile(RECIPIENT_PATTERN)}


@dataclass
class Call:
    """One request as the handlers see it."""

    request: flask.Request
    args: dict[str, str]
    request_id: str
    response_headers: dict[str, str] = field(default_factory=dict)

    def json_body(self, model: type[M], *, limit: int = MAX_JSON_BYTES) -> M:
        raw = self.raw_body(limit)
        if not raw:
            raise errors.ValidationFailed("a JSON body is required", field="body")
        if not is_json(self.request.mimetype):
            raise errors.UnsupportedMediaType(
                "the body must be JSON: send Content-Type: application/json "
                f"(got {self.request.mimetype or 'none'})",
                field="Content-Type",
            )
        try:
            return model.model_validate_json(raw)
        except ValidationError as e:
            raise validation_error(e) from None

    def raw_body(self, limit: int) -> bytes:
        length = self.request.content_length
        if length is not None and length > limit:
            raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes", field="body")
        data = self.request.get_data(cache=True)
        if len(data) > limit:
            raise errors.PayloadTooLarge(f"the body is larger than {limit} bytes", field="body")
        return bytes(data)

    def query_cursor(self, name: str = "cursor") -> str | None:
        value = self.request.args.get(name)
        if value is None:
            return None
        if not ID.fullmatch(value):
            raise errors.ValidationFailed(
                f"{name} must be the next_cursor of a previous page", field=name
            )
        return value

    def query_int(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.request.args.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise errors.ValidationFailed(f"{name} must be an integer", field=name) from None
        if not lo <= number <= hi:
            raise errors.ValidationFailed(f"{name} must be between {lo} and {hi}", field=name)
        return number


def is_json(mimetype: str) -> bool:
    """application/json or a structured `+json` type (RFC 6839), parameters aside."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def validation_error(error: ValidationError) -> errors.ValidationFailed:
    details = [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "body",
            "message": e["msg"],
            "type": e["type"],
        }
        for e in error.errors(include_url=False, include_input=False)
    ]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return errors.ValidationFailed(
        f"invalid request: {first['field']}: {first['message']}",
        field=str(first["field"]),
        details=details,
    )


Handler = Callable[[Call], flask.Response | tuple[Any, int] | Any]


@dataclass(frozen=True)
class Doc:
    """What the OpenAPI document says about a route (functions.openapi renders it)."""

    summary: str
    auth: str | None = "tenant"  # tenant | admin | internal | None
    body: type[BaseModel] | None = None
    body_required: bool = True  # False: the body may be left out (every field has a default)
    responses: dict[int, type[BaseModel] | str] = field(default_factory=dict)
    query: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (json type, text)
    headers: dict[str, str] = field(default_factory=dict)  # request header → description
    tags: tuple[str, ...] = ()
    rate_limit: str | None = None  # the tenant limit that applies, e.g. "60 per minute"


@dataclass(frozen=True)
class Route:
    rule: str
    methods: tuple[str, ...]
    doc: Doc | None
    name: str  # the handler's name: the operation's OpenAPI operationId (SDK method names)


class Router:
    def __init__(self) -> None:
        self._map = Map(strict_slashes=False, merge_slashes=False)
        self._handlers: dict[str, Handler] = {}
        self.routes: list[Route] = []
        self._registered: list[tuple[str, list[str], Doc | None, Handler]] = []

    def include(self, other: Router) -> None:
        """Serve another module's routes too: each module of the api declares its own router."""
        for rule, methods, doc, fn in other._registered:
            self.route(rule, methods, doc)(fn)

    def route(
        self, rule: str, methods: list[str], doc: Doc | None = None
    ) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            endpoint = f"{fn.__module__}.{fn.__name__}"
            self._map.add(Rule(rule, endpoint=endpoint, methods=methods))
            self._handlers[endpoint] = fn
            self.routes.append(Route(rule, tuple(methods), doc, fn.__name__))
            self._registered.append((rule, methods, doc, fn))
            return fn

        return register

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The router as the whole WSGI application (functions/server.py `serve_directly`)."""
        request = flask.Request(environ)
        response = self.dispatch(request)
        if not response.is_streamed:
            # Read what the handler left unread (an early 401, a 413), as functions-framework's
            # own view does: a half-read body must not be taken for the next kept-alive request.
            request.get_data()
        return response(environ, start_response)

    def dispatch(self, request: flask.Request) -> flask.Response:
        started = time.monotonic()
        request_id = _request_id(request)
        call: Call | None = None
        try:
            adapter = self._map.bind_to_environ(request.environ)
            try:
                endpoint, args = adapter.match()
            except WzNotFound:
                raise errors.NotFound(f"no route for {request.path}", field="path") from None
            except WzMethodNotAllowed as e:
                allowed = ", ".join(sorted(e.valid_methods or []))
                call = Call(request, {}, request_id, {"Allow": allowed})
                raise errors.MethodNotAllowed(
                    f"{request.method} is not allowed here (allowed: {allowed})", field="method"
                ) from None
            for name, value in args.items():
                if not PATH_PARAMETERS.get(name, ID).fullmatch(str(value)):
                    raise errors.NotFound(f"no such {name.removesuffix('_id')}", field=name)
            call = Call(request, {k: str(v) for k, v in args.items()}, request_id)
            response = _to_response(self._handlers[str(endpoint)](call))
            response.headers.update(call.response_headers)
        except Exception as error:  # the single place errors become HTTP answers
            response = _error_response(error, request_id, call)
        response.headers["X-Request-Id"] = request_id
        ms = round((time.monotonic() - started) * 1000, 1)
        # The time spent in here (W3C Server-Timing): a client can tell it from the network's.
        response.headers["Server-Timing"] = f"app;dur={ms}"
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            request_id=request_id,
            ms=ms,
        )
        return response


def _error_response(error: Exception, request_id: str, call: Call | None) -> flask.Response:
    status, body, headers = render_error(error, request_id)
    if status_for(error) == 500:
        log.error("unhandled error", request_id=request_id, exc_info=error)
    response = flask.Response(body, status=status, headers=headers)
    if call is not None:
        response.headers.update(call.response_headers)
    return response


def _request_id(request: flask.Request) -> str:
    trace = request.headers.get("X-Cloud-Trace-Context", "")
    if trace:
        return trace.split("/")[0][:64]
    return secrets.token_hex(8)


def _to_response(result: Any) -> flask.Response:
    if isinstance(result, flask.Response):
        return result
    status = 200
    if isinstance(result, tuple):
        result, status = result
    if isinstance(result, BaseModel):
        body = result.model_dump_json()
    else:
        body = json.dumps(result, default=str)
    return flask.Response(body, status=status, mimetype="application/json")
