"""Cloud Tasks v2 Queue and Task resources in the protobuf-JSON shape, both ways.

The official client's REST transport sends camelCase JSON, bytes as base64 and enums as
numbers (it asks for numbers back with ``$alt=json;enum-encoding=int``); the scalars are in
protojson.py.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from emulators.cloud_tasks import config as cfg
from emulators.cloud_tasks.errors import invalid, unimplemented
from emulators.cloud_tasks.model import (
    Attempt,
    HttpMethod,
    HttpTarget,
    OAuthToken,
    OidcToken,
    QueueState,
    Task,
    View,
)
from emulators.cloud_tasks.protojson import (
    as_object,
    as_string,
    enum_json,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_enum,
    parse_float,
    parse_int,
)

Json = dict[str, object]


def parse_view(value: object) -> View:
    if value is None:
        return View.BASIC
    return parse_enum(value, View, "responseView") or View.BASIC


# --------------------------------------------------------------------------- queues


def parse_queue_config(queue: Mapping[str, object]) -> cfg.QueueConfig:
    """A Queue message's settings, defaults filled in for anything unset (or zero)."""
    if queue.get("httpTarget"):
        raise unimplemented("Queue.httpTarget")
    rate = as_object(queue.get("rateLimits"), "rateLimits")
    retry = as_object(queue.get("retryConfig"), "retryConfig")
    logging_config = queue.get("stackdriverLoggingConfig")
    defaults_rate, defaults_retry = cfg.RateLimits(), cfg.RetryConfig()

    dispatches = defaults_rate.max_dispatches_per_second
    if rate.get("maxDispatchesPerSecond"):
        dispatches = parse_float(rate["maxDispatchesPerSecond"], "maxDispatchesPerSecond")
        if not 0 < dispatches <= cfg.MAX_DISPATCHES_PER_SECOND:
            raise invalid(
                f"RateLimits.maxDispatchesPerSecond must be in (0, "
                f"{cfg.MAX_DISPATCHES_PER_SECOND:g}], got {dispatches:g}."
            )
    concurrent = defaults_rate.max_concurrent_dispatches
    if rate.get("maxConcurrentDispatches"):
        concurrent = parse_int(rate["maxConcurrentDispatches"], "maxConcurrentDispatches")
        if not 0 < concurrent <= cfg.MAX_CONCURRENT_DISPATCHES:
            raise invalid(
                f"RateLimits.maxConcurrentDispatches must be in [1, "
                f"{cfg.MAX_CONCURRENT_DISPATCHES}], got {concurrent}."
            )
    return cfg.QueueConfig(
        rate_limits=cfg.RateLimits(dispatches, concurrent),
        retry=parse_retry_config(retry, defaults_retry),
        logging_sampling_ratio=(
            parse_float(
                as_object(logging_config, "stackdriverLoggingConfig").get("samplingRatio", 0),
                "samplingRatio",
            )
            if logging_config is not None
            else None
        ),
    )


def parse_retry_config(retry: Mapping[str, object], defaults: cfg.RetryConfig) -> cfg.RetryConfig:
    attempts = defaults.max_attempts
    if retry.get("maxAttempts"):
        attempts = parse_int(retry["maxAttempts"], "maxAttempts")
        if attempts < -1:
            raise invalid(f"RetryConfig.maxAttempts must be >= -1, got {attempts}.")
    durations = {}
    for key, default in (
        ("maxRetryDuration", defaults.max_retry_duration_s),
        ("minBackoff", defaults.min_backoff_s),
        ("maxBackoff", defaults.max_backoff_s),
    ):
        value = default
        if retry.get(key) is not None:
            value = parse_duration(retry[key], key)
            if value < 0:
                raise invalid(f"RetryConfig.{key} must not be negative.")
        durations[key] = value
    if durations["minBackoff"] > durations["maxBackoff"]:
        raise invalid("RetryConfig.minBackoff must not be greater than RetryConfig.maxBackoff.")
    doublings = defaults.max_doublings
    if retry.get("maxDoublings"):
        doublings = parse_int(retry["maxDoublings"], "maxDoublings")
        if doublings < 0:
            raise invalid(f"RetryConfig.maxDoublings must be >= 0, got {doublings}.")
    return cfg.RetryConfig(
        max_attempts=attempts,
        max_retry_duration_s=durations["maxRetryDuration"],
        min_backoff_s=durations["minBackoff"],
        max_backoff_s=durations["maxBackoff"],
        max_doublings=doublings,
    )


def rate_limits_json(limits: cfg.RateLimits) -> Json:
    return {
        "maxDispatchesPerSecond": limits.max_dispatches_per_second,
        "maxBurstSize": limits.max_burst_size,
        "maxConcurrentDispatches": limits.max_concurrent_dispatches,
    }


def retry_config_json(retry: cfg.RetryConfig) -> Json:
    return {
        "maxAttempts": retry.max_attempts,
        "maxRetryDuration": format_duration(retry.max_retry_duration_s),
        "minBackoff": format_duration(retry.min_backoff_s),
        "maxBackoff": format_duration(retry.max_backoff_s),
        "maxDoublings": retry.max_doublings,
    }


def queue_config_json(config: cfg.QueueConfig) -> Json:
    out: Json = {
        "rateLimits": rate_limits_json(config.rate_limits),
        "retryConfig": retry_config_json(config.retry),
    }
    if config.logging_sampling_ratio is not None:
        out["stackdriverLoggingConfig"] = {"samplingRatio": config.logging_sampling_ratio}
    return out


def _camel(path: str) -> str:
    head, *rest = path.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def merge_queue_update(
    current: cfg.QueueConfig | None, incoming: Mapping[str, object], mask: Sequence[str]
) -> cfg.QueueConfig:
    """UpdateQueue: the fields named by the mask (all fields if it is empty) come from the
    request, the rest stay; output-only fields are ignored."""
    if not mask or current is None:
        return parse_queue_config(incoming)
    merged: dict[str, object] = {
        k: dict(v) if isinstance(v, dict) else v for k, v in queue_config_json(current).items()
    }
    rate = merged["rateLimits"]
    if isinstance(rate, dict):
        rate.pop("maxBurstSize", None)  # output only
    for raw in mask:
        path = ".".join(_camel(part) for part in raw.strip().split("."))
        if path in ("name", "state", "purgeTime", "rateLimits.maxBurstSize"):
            continue
        head, _, leaf = path.partition(".")
        if head not in ("rateLimits", "retryConfig", "stackdriverLoggingConfig", "httpTarget"):
            raise invalid(f'Invalid update mask path "{raw}".')
        source = as_object(incoming.get(head), head)
        if not leaf:
            merged[head] = dict(source)
            continue
        target = merged.setdefault(head, {})
        if not isinstance(target, dict):
            raise invalid(f'Invalid update mask path "{raw}".')
        if leaf in source:
            target[leaf] = source[leaf]
        else:
            target.pop(leaf, None)
    return parse_queue_config(merged)


def queue_json(
    name: str,
    config: cfg.QueueConfig,
    state: QueueState,
    purge_time: float | None,
    *,
    ints: bool,
) -> Json:
    out: Json = {"name": name, **queue_config_json(config), "state": enum_json(state, ints)}
    if purge_time is not None:
        out["purgeTime"] = format_timestamp(purge_time)
    return out


# --------------------------------------------------------------------------- tasks


def _parse_body(value: object) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise invalid("Invalid value for httpRequest.body: expected base64 text.")
    try:
        # proto3 JSON accepts standard and URL-safe base64, padded or not.
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise invalid("Invalid value for httpRequest.body: not base64.") from e


def parse_http_request(value: object) -> HttpTarget:
    request = as_object(value, "httpRequest")
    url = as_string(request.get("url"), "httpRequest.url")
    headers_in = as_object(request.get("headers"), "httpRequest.headers")
    headers = {str(k): as_string(v, f"httpRequest.headers[{k}]") for k, v in headers_in.items()}
    method = HttpMethod.POST
    if request.get("httpMethod") is not None:
        method = parse_enum(request["httpMethod"], HttpMethod, "httpMethod") or HttpMethod.POST
    oidc_token = None
    if request.get("oidcToken") is not None:
        oidc = as_object(request["oidcToken"], "oidcToken")
        oidc_token = OidcToken(
            as_string(oidc.get("serviceAccountEmail"), "oidcToken.serviceAccountEmail"),
            as_string(oidc.get("audience"), "oidcToken.audience"),
        )
    oauth_token = None
    if request.get("oauthToken") is not None:
        oauth = as_object(request["oauthToken"], "oauthToken")
        oauth_token = OAuthToken(
            as_string(oauth.get("serviceAccountEmail"), "oauthToken.serviceAccountEmail"),
            as_string(oauth.get("scope"), "oauthToken.scope")
            or "https://www.googleapis.com/auth/cloud-platform",
        )
    return HttpTarget(
        url=url,
        method=method,
        headers=headers,
        body=_parse_body(request.get("body")),
        oidc_token=oidc_token,
        oauth_token=oauth_token,
    )


def _attempt_json(attempt: Attempt) -> Json:
    out: Json = {
        "scheduleTime": format_timestamp(attempt.schedule_time),
        "dispatchTime": format_timestamp(attempt.dispatch_time),
    }
    if attempt.response_time is not None and attempt.status is not None:
        out["responseTime"] = format_timestamp(attempt.response_time)
        status: Json = {"message": attempt.status_message}
        if attempt.status.number:
            status["code"] = attempt.status.number
        out["responseStatus"] = status
    return out


def task_json(task: Task, view: View, retry: cfg.RetryConfig | None, *, ints: bool) -> Json:
    target = task.target
    request: Json = {
        "url": target.url,
        "httpMethod": enum_json(target.method, ints),
        "headers": dict(target.headers),
    }
    if view is View.FULL and target.body:
        request["body"] = base64.b64encode(target.body).decode("ascii")
    if target.oidc_token is not None:
        request["oidcToken"] = {
            "serviceAccountEmail": target.oidc_token.service_account_email,
            "audience": target.oidc_token.audience,
        }
    if target.oauth_token is not None:
        request["oauthToken"] = {
            "serviceAccountEmail": target.oauth_token.service_account_email,
            "scope": target.oauth_token.scope,
        }
    out: Json = {
        "name": task.name,
        "httpRequest": request,
        "scheduleTime": format_timestamp(task.schedule_time),
        "createTime": format_timestamp(float(int(task.create_time))),
        "dispatchDeadline": format_duration(task.dispatch_deadline_s),
        "view": enum_json(view, ints),
    }
    if task.dispatch_count:
        out["dispatchCount"] = task.dispatch_count
    if task.response_count:
        out["responseCount"] = task.response_count
    if task.first_dispatch_time is not None:
        out["firstAttempt"] = {"dispatchTime": format_timestamp(task.first_dispatch_time)}
    if task.last_attempt is not None:
        out["lastAttempt"] = _attempt_json(task.last_attempt)
    if retry is not None:
        out["retryConfig"] = retry_config_json(retry)
    return out
