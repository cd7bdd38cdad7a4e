"""Structured logging: JSON lines in Cloud Logging's format in the cloud (severity, message,
trace, request id, session id), a readable console format locally.

Every line goes through one redaction step before it is rendered, whatever the caller passed
and whoever logged it (wagate's structlog loggers and the libraries' standard `logging` records,
which are rendered by the same processors):
- values under sensitive keys (secret, token, api key, authorization, body, content, text ...)
  are replaced whole;
- strings that look like credentials (wagate API and admin keys, webhook secrets, bearer
  tokens) are cut out wherever they appear, exception tracebacks included;
- the values of this process's secret settings (environment variables named like
  WAGATE_*_SECRET, *_KEY, *_KEYS, *_TOKEN, *_PASSWORD) are cut out wherever they appear, so even
  an exception message that quotes one cannot leak it.
Message bodies are covered by the first rule only: code must log ids, never content (a test,
tests/integration/test_redaction_logs.py, drives every path and greps the output).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
# Keys whose values must never be logged.
SENSITIVE_KEYS = re.compile(
    r"(secret|password|token|api_?key|authorization|auth_state|credential|private|"
    r"body|content|caption|text|key_material|admin_key|cookie)",
    re.IGNORECASE,
)
# Values that look like credentials, wherever they appear.
SENSITIVE_VALUES = re.compile(
    r"(wg_(live|admin)_[A-Za-z0-9_-]{8,}|whsec_[A-Za-z0-9_-]{8,}|Bearer\s+\S+)", re.IGNORECASE
)
SAFE_KEYS = frozenset({"event", "message", "level", "severity", "timestamp", "logger"})
# Environment variables holding secrets, and the shortest value worth scrubbing (shorter ones
# would cut ordinary words out of log lines).
SECRET_ENV = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEY|_KEYS)$", re.IGNORECASE)
MIN_SECRET_LEN = 12
_NOISY = ("urllib3", "google", "grpc", "aiohttp.access", "werkzeug", "httpx", "httpcore")

_registered: set[str] = set()
_known_secrets: re.Pattern[str] | None = None
_handler: logging.Handler | None = None


def register_secrets(values: Iterable[str]) -> None:
    """Scrub these exact values (and each part of a comma/colon-separated list, such as a key
    ring `kid:base64key,...`) from every log line of this process from now on."""
    global _known_secrets
    found = {v for v in values if len(v) >= MIN_SECRET_LEN}
    for value in list(found):
        found.update(p for p in re.split(r"[,:]", value) if len(p) >= MIN_SECRET_LEN)
    if found <= _registered:
        return
    _registered.update(found)
    # Longest first, so a secret that contains another is cut out whole.
    alternatives = sorted(_registered, key=len, reverse=True)
    _known_secrets = re.compile("|".join(re.escape(v) for v in alternatives))


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return [value for name, value in env.items() if SECRET_ENV.search(name) and value]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        value = SENSITIVE_VALUES.sub(REDACTED, value)
        return _known_secrets.sub(REDACTED, value) if _known_secrets is not None else value
    if isinstance(value, dict):
        return {k: (REDACTED if _sensitive(k) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _sensitive(key: Any) -> bool:
    return isinstance(key, str) and key not in SAFE_KEYS and bool(SENSITIVE_KEYS.search(key))


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event.keys()):
        if key.startswith("_"):  # structlog's own bookkeeping (the LogRecord of a library line)
            continue
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


class _Stderr:
    """sys.stderr as it is at each write, not as it was at configure(): a process whose stderr
    is replaced later (pytest's capture, a daemon redirecting it) keeps logging."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "json", level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and the standard library (once per process; calling it again
    replaces the previous set-up)."""
    global _handler
    register_secrets(secrets_from_environment())
    out: Any = stream or _Stderr()
    # Tracebacks are rendered to text *before* redaction, so they are scrubbed too.
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any
    if fmt == "json":
        shared.append(_cloud_logging_fields)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Library records take the same road: same redaction, same format.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _handler = handler
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
