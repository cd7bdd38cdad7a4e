"""Structured logging: JSON lines in Cloud Logging's format in the cloud (severity, message,
trace, request id, session id), a readable console format locally.

A redaction processor removes secrets, API keys, auth state and message bodies from every
event before it is rendered, whatever the caller passed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
# Keys whose values must never be logged.
SENSITIVE_KEYS = re.compile(
    r"(secret|password|token|api_?key|authorization|auth_state|credential|private|"
    r"body|content|caption|text|key_material|admin_key|cookie)",
    re.IGNORECASE,
)
# Values that look like bearer tokens / wagate keys, wherever they appear.
SENSITIVE_VALUES = re.compile(r"(wg_(live|admin)_[A-Za-z0-9_-]{8,}|Bearer\s+\S+)")
SAFE_KEYS = frozenset({"event", "message", "level", "severity", "timestamp", "logger"})


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return SENSITIVE_VALUES.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: (REDACTED if _sensitive(k) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _sensitive(key: str) -> bool:
    return key not in SAFE_KEYS and bool(SENSITIVE_KEYS.search(key))


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event.keys()):
        event[key] = REDACTED if _sensitive(key) else _scrub(event[key])
    return event


def _cloud_logging_fields(
    _: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["severity"] = event.pop("level", method).upper()
    event["message"] = event.pop("event", "")
    trace = event.pop("trace", None)
    if trace:
        event["logging.googleapis.com/trace"] = trace
    return event


def configure(fmt: str = "json", level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and the standard library once per process."""
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any
    if fmt == "json":
        shared.append(_cloud_logging_fields)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        stream=out, level=level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    for noisy in ("urllib3", "google", "grpc", "aiohttp.access", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
