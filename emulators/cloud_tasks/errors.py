"""The Google API errors the emulator answers with, and the google.rpc codes it records.

Errors travel as Google JSON error bodies, ``{"error": {"code", "message", "status"}}``, so the
official client's REST transport turns them into its usual exceptions (NotFound, BadRequest …).
Messages copy the wording real Cloud Tasks uses where it is known.
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """google.rpc.Code: (number, HTTP status that carries it over REST)."""

    OK = (0, 200)
    CANCELLED = (1, 499)
    UNKNOWN = (2, 500)
    INVALID_ARGUMENT = (3, 400)
    DEADLINE_EXCEEDED = (4, 504)
    NOT_FOUND = (5, 404)
    ALREADY_EXISTS = (6, 409)
    PERMISSION_DENIED = (7, 403)
    RESOURCE_EXHAUSTED = (8, 429)
    FAILED_PRECONDITION = (9, 400)
    ABORTED = (10, 409)
    OUT_OF_RANGE = (11, 400)
    UNIMPLEMENTED = (12, 501)
    INTERNAL = (13, 500)
    UNAVAILABLE = (14, 503)
    UNAUTHENTICATED = (16, 401)

    @property
    def number(self) -> int:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]


# How a target's HTTP answer is recorded in Attempt.responseStatus (the mapping Cloud Tasks
# documents; anything else is UNKNOWN).
_HTTP_TO_CODE = {
    200: Code.OK,
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ALREADY_EXISTS,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}


def code_for_http_status(status: int) -> Code:
    if 200 <= status < 300:
        return Code.OK
    return _HTTP_TO_CODE.get(status, Code.UNKNOWN)


class ApiError(Exception):
    """An RPC failure, answered to the client as a Google JSON error body."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "code": self.code.http_status,
                "message": self.message,
                "status": self.code.name,
            }
        }


def invalid(message: str) -> ApiError:
    return ApiError(Code.INVALID_ARGUMENT, message)


def queue_not_found() -> ApiError:
    return ApiError(
        Code.NOT_FOUND,
        "Queue does not exist. If you just created the queue, "
        "wait at least a minute for the queue to initialize.",
    )


def task_not_found() -> ApiError:
    return ApiError(Code.NOT_FOUND, "Requested entity was not found.")


def task_recently_gone() -> ApiError:
    return ApiError(
        Code.NOT_FOUND,
        "The task no longer exists, though a task with this name existed recently. "
        "The task either successfully completed or was deleted.",
    )


def queue_exists() -> ApiError:
    return ApiError(Code.ALREADY_EXISTS, "Queue already exists")


def task_exists() -> ApiError:
    return ApiError(Code.ALREADY_EXISTS, "Requested entity already exists")


def unimplemented(what: str) -> ApiError:
    return ApiError(Code.UNIMPLEMENTED, f"{what} is not supported by the Cloud Tasks emulator")
