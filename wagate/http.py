"""The single table from error types to HTTP answers, and the error body every endpoint renders.

Body: {"error": {"code", "message", "details", "request_id"}}. Unknown exceptions become a 500
with a generic message: a stack trace never reaches a client.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

from wagate import errors

# Most specific first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[errors.WagateError], int], ...] = (
    (errors.ValidationFailed, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.MethodNotAllowed, 405),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.UriTooLong, 414),
    (errors.UnsupportedMediaType, 415),
    (errors.Unprocessable, 422),
    (errors.RateLimited, 429),
    (errors.HeadersTooLarge, 431),
    (errors.NotImplementedByServer, 501),
    (errors.DependencyUnavailable, 503),
    (errors.WagateError, 500),
)


def status_for(error: BaseException) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 500


def error_body(error: BaseException, request_id: str) -> dict[str, Any]:
    if isinstance(error, errors.WagateError) and status_for(error) != 500:
        details = list(error.details)
        if error.field and not any(d.get("field") == error.field for d in details):
            details.insert(0, {"field": error.field, "message": error.message})
        return {
            "error": {
                "code": error.code,
                "message": error.message,
                "details": details,
                "request_id": request_id,
            }
        }
    return {
        "error": {
            "code": "internal",
            "message": "An internal error occurred; it has been logged with the request id.",
            "details": [],
            "request_id": request_id,
        }
    }


def render_error(error: BaseException, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    """(status, JSON body, headers) for an error, including Retry-After where it applies."""
    status = status_for(error)
    headers = {"Content-Type": "application/json"}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    elif status == 503:
        headers["Retry-After"] = "5"
    return status, json.dumps(error_body(error, request_id)).encode(), headers


# What an HTTP server (gunicorn under the functions, aiohttp in the runner) refuses before the
# application runs, by the status it would have answered: wagate's own message, never the
# server's, which can quote the offending header's value (an API key).
PRE_APP_ERRORS: dict[int, tuple[type[errors.WagateError], str]] = {
    400: (
        errors.ValidationFailed,
        "malformed HTTP request: the request line, a header (a control character?) or the "
        "chunked body is invalid",
    ),
    403: (errors.Forbidden, "request refused by the HTTP server"),
    413: (errors.PayloadTooLarge, "the request is too large"),
    414: (errors.UriTooLong, "the request line (method, path and query) is too long"),
    417: (errors.ValidationFailed, "unsupported Expect header"),
    431: (errors.HeadersTooLarge, "the request's headers are too large"),
    501: (errors.NotImplementedByServer, "unsupported transfer coding"),
}


def pre_app_error(status: int) -> errors.WagateError:
    """The error for an answer the HTTP server gives before wagate's code runs."""
    kind, message = PRE_APP_ERRORS.get(status, (errors.Internal, "internal error"))
    return kind(message, field="request" if status < 500 else None)


def raw_error_response(status: int, request_id: str) -> bytes:
    """A whole HTTP/1.1 answer (status line, headers, JSON body) for a server that writes
    bytes to the socket itself; the connection closes after it."""
    code, body, headers = render_error(pre_app_error(status), request_id)
    reason = HTTPStatus(code).phrase
    lines = [f"HTTP/1.1 {code} {reason}", "Connection: close", f"X-Request-Id: {request_id}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
