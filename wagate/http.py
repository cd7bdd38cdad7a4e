"""The single table from error types to HTTP answers, and the error body every endpoint renders.

Body: {"error": {"code", "message", "details", "request_id"}}. Unknown exceptions become a 500
with a generic message: a stack trace never reaches a client.
"""

from __future__ import annotations

import json
import math
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
    (errors.Unprocessable, 422),
    (errors.RateLimited, 429),
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
