"""infra/terraform agrees with the code it deploys.

Terraform cannot init here (no provider downloads), so these tests read the HCL with
python-hcl2 and compare it with the code's own sources of truth: the Settings model
(wagate/config.py), the queue table (wagate/queues.py), the function entry points
(functions/main.py), the routes the runner and the functions serve, the Firestore models and
the log lines and alert kinds the code emits. `terraform validate` and `plan` run in Cloud Build.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from devstack.stack import FUNCTION_THREADS
from tests.infra import terraform as tf
from tests.infra.terraform import ROOT, block, blocks, dynamic, expr
from wagate import queues as wagate_queues
from wagate.config import Settings
from wagate.contracts import (
    EventLogDoc,
    IdempotencyDoc,
    InboundDoc,
    MessageDoc,
    PendingSend,
    RecoveryAction,
    SessionDoc,
    WebhookDeliveryDoc,
)
from wagate.contracts.directory import ContactDoc
from wagate.services.groups import GroupCreateDoc
from wagate.services.ratelimit import RateLimitShard

COMPONENTS = ("api", "sweeper", "runner")

# ---------------------------------------------------------------- settings per component
#
# How each Settings field reaches each component in the cloud:
#   ENV     a plain environment variable set by Terraform
#   SECRET  an environment variable filled from Secret Manager
#   IF      set only in some configurations (simulator_url: engine = simulator)
#   None    deliberately not set: local-only, unused by that component, or the code default
#           is the right cloud value (DEFAULT_IN_CLOUD says why)
ENV, SECRET, IF = "env", "secret", "conditional"

WHERE: dict[str, dict[str, str | None]] = {
    "project_id": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "region": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "env": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "log_format": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "log_level": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "tasks_endpoint": {"api": None, "sweeper": None, "runner": None},
    # api assigns new sessions to shards; the sweeper builds the same gateway; a runner
    # serves exactly one shard (shard_id).
    "shard_count": {"api": ENV, "sweeper": ENV, "runner": None},
    "queue_prefix": {"api": ENV, "sweeper": ENV, "runner": ENV},
    # api/sweeper route tasks to runners; a runner checks its own URL as the OIDC audience.
    "runner_urls": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "tasks_service_account": {"api": ENV, "sweeper": ENV, "runner": ENV},
    "internal_secret": {"api": None, "sweeper": None, "runner": None},
    # A runner accepts the api's tokens on POST /queries (number checks, groups).
    "api_service_account": {"api": None, "sweeper": None, "runner": ENV},
    # The sweeper's maintenance deletes orphan backups.
    "backup_bucket": {"api": None, "sweeper": ENV, "runner": ENV},
    # Every runner stores received files; the real engines also read uploads to send them.
    "media_bucket": {"api": ENV, "sweeper": None, "runner": ENV},
    "inbound_media_max_bytes": {"api": None, "sweeper": None, "runner": None},
    "inbound_media_attempts": {"api": None, "sweeper": None, "runner": None},
    "media_url_ttl_s": {"api": None, "sweeper": None, "runner": None},
    # Local only: the cloud signs with IAM signBlob as the runner's account (no key).
    "media_signing_key": {"api": None, "sweeper": None, "runner": None},
    "media_url_endpoint": {"api": None, "sweeper": None, "runner": None},
    "shard_id": {"api": None, "sweeper": None, "runner": ENV},
    "instance_id": {"api": None, "sweeper": None, "runner": None},
    "lease_ttl_s": {"api": None, "sweeper": None, "runner": None},
    "lease_renew_s": {"api": None, "sweeper": None, "runner": None},
    "engine": {"api": None, "sweeper": None, "runner": ENV},
    "simulator_url": {"api": None, "sweeper": None, "runner": IF},
    "whatsmeow_proxy": {"api": None, "sweeper": None, "runner": None},
    # engine = baileys: WhatsApp's own websocket and 50 sockets per worker are the defaults.
    "baileys_url": {"api": None, "sweeper": None, "runner": None},
    "baileys_media_url": {"api": None, "sweeper": None, "runner": None},
    "baileys_sessions_per_worker": {"api": None, "sweeper": None, "runner": None},
    "persistence": {"api": None, "sweeper": None, "runner": ENV},
    "state_dir": {"api": None, "sweeper": None, "runner": ENV},
    # The key ring encrypts backups (runner) and seals tenants' webhook secrets (api seals
    # on creation, the sweeper opens them to sign deliveries).
    "backup_keys": {"api": SECRET, "sweeper": SECRET, "runner": SECRET},
    "backup_debounce_s": {"api": None, "sweeper": None, "runner": None},
    "backup_period_s": {"api": None, "sweeper": None, "runner": None},
    "send_ack_timeout_s": {"api": None, "sweeper": None, "runner": None},
    "max_send_attempts": {"api": None, "sweeper": None, "runner": None},
    "sweep_stuck_after_s": {"api": None, "sweeper": None, "runner": None},
    "event_stream_hold_s": {"api": None, "sweeper": None, "runner": None},
    # Alert notices are delivered (signed) by the sweeper's /alerts/deliver; the URL is optional.
    "alert_webhook_url": {"api": None, "sweeper": IF, "runner": None},
    "alert_webhook_secret": {"api": None, "sweeper": SECRET, "runner": None},
    "retention_inbound_days": {"api": None, "sweeper": None, "runner": None},
    "retention_message_body_days": {"api": None, "sweeper": None, "runner": None},
    "key_max_age_days": {"api": None, "sweeper": None, "runner": None},
    "admin_key": {"api": SECRET, "sweeper": None, "runner": None},
    # Set for completeness (the api's public base URL); no code reads it yet.
    "api_url": {"api": ENV, "sweeper": None, "runner": None},
    # The sweeper checks it as the OIDC audience; runners address webhook tasks to it.
    "sweeper_url": {"api": None, "sweeper": ENV, "runner": ENV},
    # The egress guard: the api checks URLs, the sweeper delivers webhooks, runners fetch media.
    "egress_allow_private": {"api": None, "sweeper": None, "runner": None},
    "egress_allow_hosts": {"api": ENV, "sweeper": ENV, "runner": ENV},
    # The api assigns new sessions to shards that are not full; the runner does not read it.
    "sessions_per_shard": {"api": ENV, "sweeper": None, "runner": None},
}

# Fields a component's code reads that Terraform deliberately leaves unset, and why.
DEFAULT_IN_CLOUD = {
    "baileys_url": "WhatsApp's websocket, the library's own default (a fake only in tests)",
    "baileys_sessions_per_worker": "50 sockets per Node worker (docs/engines.md, bench)",
    "baileys_media_url": "WhatsApp's media host, mmg.whatsapp.net (a fake only in tests)",
    "tasks_endpoint": "the Cloud Tasks emulator's address; unset means the real Cloud Tasks",
    "internal_secret": "the local shared secret; in the cloud internal calls carry OIDC tokens",
    "instance_id": "defaults to hostname-pid (see docs/deploy.md, known issues)",
    "lease_ttl_s": "tuned in code (docs/decisions.md: 9 s TTL, 3 s renewal)",
    "lease_renew_s": "tuned in code (docs/decisions.md)",
    "backup_debounce_s": "tuned in code",
    "backup_period_s": "tuned in code",
    "send_ack_timeout_s": "tuned in code, inside the 60 s dispatch deadline",
    "max_send_attempts": "tuned in code",
    "sweep_stuck_after_s": "tuned in code (2 min); the chaos test shortens it",
    "event_stream_hold_s": "code default (25 s, below the api's request timeout)",
    "simulator_url": "only with engine = simulator",
    "whatsmeow_proxy": "direct egress by default; set it to send WhatsApp traffic via a proxy",
    "retention_inbound_days": "code default (30 d, the Firestore TTL on inbound expire_at)",
    "retention_message_body_days": "code default (30 d); docs/operations.md",
    "key_max_age_days": "code default (30 d, the backup bucket's non-current max age)",
    "egress_allow_private": "false in the cloud: only public addresses (docs/security.md)",
    "inbound_media_max_bytes": "code default (16 MiB, what WhatsApp sends as media)",
    "inbound_media_attempts": "tuned in code (4 downloads, full-jitter backoff)",
    "media_url_ttl_s": "code default (1 h signed URLs in events)",
    "media_signing_key": "local only: the cloud signs with IAM signBlob as the runner",
    "media_url_endpoint": "https://storage.googleapis.com, the library's default",
}

_SETTINGS_READ = re.compile(r"settings\.([a-z_]+)")
_METHODS = {"runner_url": "runner_urls"}


def fields_read_by(*folders: str) -> set[str]:
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for name in _SETTINGS_READ.findall(path.read_text()):
                found.add(_METHODS.get(name, name))
    return found & set(Settings.model_fields)


def _keys_in(expression: str) -> tuple[set[str], set[str]]:
    """WAGATE_* keys of an env expression: (always set, set only in a conditional branch)."""
    conditional: set[str] = set()
    for branch in re.findall(r"\?\s*\{([^}]*)\}", expression):
        conditional |= set(tf.WAGATE_ENV_KEY.findall(branch))
    return set(tf.WAGATE_ENV_KEY.findall(expression)) - conditional, conditional


def _secret_envs(for_each: str, component: str) -> set[str]:
    """Secret env names a dynamic block selects with `contains(s.accessor, "<component>")`."""
    assert "local.secrets" in for_each and f'contains(s.accessor, "{component}")' in for_each
    return {s["env"] for s in tf.module().locals["secrets"].values() if component in s["accessor"]}


def component_env(component: str) -> dict[str, str]:
    """{WAGATE_NAME: ENV | SECRET | IF} that Terraform sets on a component."""
    m = tf.module()
    common = set(m.locals["common_env"])
    result: dict[str, str] = {}
    if component in ("api", "sweeper"):
        fn = m.resource("google_cloudfunctions2_function", component)
        service = block(fn, "service_config")
        local_name = expr(service["environment_variables"])
        assert local_name == f"local.{component}_env"
        expression = expr(m.locals[f"{component}_env"])
        assert expression.startswith("merge(local.common_env,")
        plain, conditional = _keys_in(expression)
        (secrets,) = dynamic(service, "secret_environment_variables")
        secret = _secret_envs(expr(secrets["for_each"]), component)
    else:
        run = m.resource("google_cloud_run_v2_service", "runner")
        container = block(block(run, "template"), "containers")
        literal = {e["name"] for e in blocks(container, "env")}
        plain_block, secret_block = dynamic(container, "env")
        assert expr(plain_block["for_each"]) == "local.runner_env"
        expression = expr(m.locals["runner_env"])
        assert expression.startswith("merge(local.common_env,")
        plain, conditional = _keys_in(expression)
        plain |= literal
        secret = _secret_envs(expr(secret_block["for_each"]), component)
    for name in common | plain:
        result[name] = ENV
    for name in conditional:
        result[name] = IF
    for name in secret:
        assert name not in result, f"{name} is both a plain and a secret variable"
        result[name] = SECRET
    return result


def test_every_setting_is_classified_for_every_component() -> None:
    assert set(WHERE) == set(Settings.model_fields), (
        "classify new Settings fields in WHERE (and deploy them if a component needs them)"
    )
    for name, where in WHERE.items():
        assert set(where) == set(COMPONENTS), name


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_gets_exactly_the_settings_it_needs(component: str) -> None:
    actual = component_env(component)
    expected = {
        f"WAGATE_{name.upper()}": how
        for name, where in WHERE.items()
        if (how := where[component]) is not None
    }
    assert actual == expected


def test_the_settings_map_matches_what_the_code_reads() -> None:
    """A field a program reads is deployed to it, or has a recorded reason not to be."""
    runner_reads = fields_read_by("runner")
    functions_reads = fields_read_by("functions")
    assert runner_reads and functions_reads
    for name in runner_reads:
        assert WHERE[name]["runner"] is not None or name in DEFAULT_IN_CLOUD, name
    for name in functions_reads:
        deployed = WHERE[name]["api"] is not None or WHERE[name]["sweeper"] is not None
        assert deployed or name in DEFAULT_IN_CLOUD, name
    # And the other way round: what the map leaves to the code default really has a reason.
    for name, where in WHERE.items():
        if all(how is None for how in where.values()):
            assert name in DEFAULT_IN_CLOUD or name not in runner_reads | functions_reads, name


def test_cloud_mode_and_identities_are_wired() -> None:
    m = tf.module()
    common = m.locals["common_env"]
    assert common["WAGATE_ENV"] == "cloud"
    assert common["WAGATE_LOG_FORMAT"] == "json"
    assert expr(common["WAGATE_QUEUE_PREFIX"]) == "local.prefix"
    assert expr(m.locals["prefix"]) == "var.name_prefix"
    assert expr(common["WAGATE_RUNNER_URLS"]) == 'join(",", local.runner_urls)'
    assert (
        expr(common["WAGATE_TASKS_SERVICE_ACCOUNT"]) == "google_service_account.tasks_invoker.email"
    )
    # The runner's shard id is its own for_each key; runner names and URLs are in shard order.
    run = m.resource("google_cloud_run_v2_service", "runner")
    container = block(block(run, "template"), "containers")
    assert {"name": "WAGATE_SHARD_ID", "value": "${each.key}"} in blocks(container, "env")
    assert expr(run["for_each"]) == "local.runner_shards"
    assert "for shard, name in local.runner_names : tostring(shard) => name" in expr(
        m.locals["runner_shards"]
    )
    assert "for shard in range(var.shard_count)" in expr(m.locals["runner_names"])
    assert "for name in local.runner_names" in expr(m.locals["runner_urls"])


def test_plain_environment_never_carries_a_secret() -> None:
    secret_names = {s["env"] for s in tf.module().locals["secrets"].values()}
    assert secret_names == {
        "WAGATE_BACKUP_KEYS",
        "WAGATE_ADMIN_KEY",
        "WAGATE_ALERT_WEBHOOK_SECRET",
    }
    for component in COMPONENTS:
        env = component_env(component)
        for name in secret_names & set(env):
            assert env[name] == SECRET, (component, name)
        assert "WAGATE_INTERNAL_SECRET" not in env


# ---------------------------------------------------------------- queues


def terraform_queues(prefix: str, shard_count: int) -> dict[str, dict[str, Any]]:
    """The queues queues.tf declares, instantiated for a prefix and shard count."""
    loc = tf.module().locals
    shard_expr = expr(loc["shard_queues"])
    all_expr = expr(loc["queues"])
    # The name templates, exactly as wagate/queues.py builds them.
    assert "for shard in range(var.shard_count)" in shard_expr
    assert (
        'for priority, rate in local.send_queue_rates : "${local.prefix}-s${shard}-${priority}"'
        in shard_expr
    )
    assert '"${local.prefix}-s${shard}-control" = merge(local.control_queue_settings' in shard_expr
    assert "merge(rate, local.send_queue_retry" in shard_expr
    assert '"${local.prefix}-webhooks" = merge(local.webhook_queue_settings' in all_expr
    found: dict[str, dict[str, Any]] = {}
    for shard in range(shard_count):
        for priority, rate in loc["send_queue_rates"].items():
            found[f"{prefix}-s{shard}-{priority}"] = {**rate, **loc["send_queue_retry"]}
        found[f"{prefix}-s{shard}-control"] = dict(loc["control_queue_settings"])
    found[f"{prefix}-webhooks"] = dict(loc["webhook_queue_settings"])
    return found


@pytest.mark.parametrize("shard_count", [1, 3])
def test_queues_match_wagate_queues(shard_count: int) -> None:
    expected = {
        spec.name: {
            "max_dispatches_per_second": spec.max_dispatches_per_second,
            "max_concurrent_dispatches": spec.max_concurrent_dispatches,
            "min_backoff_s": spec.min_backoff_s,
            "max_backoff_s": spec.max_backoff_s,
            "max_doublings": spec.max_doublings,
            "max_attempts": spec.max_attempts,
        }
        for spec in wagate_queues.all_queues("wagate", shard_count)
    }
    assert terraform_queues("wagate", shard_count) == expected
    assert set(tf.module().locals["send_queue_rates"]) == set(wagate_queues.PRIORITIES)


def test_queue_resource_applies_every_setting() -> None:
    queue = tf.module().resource("google_cloud_tasks_queue", "this")
    assert expr(queue["for_each"]) == "local.queues"
    assert expr(queue["name"]) == "each.key"
    assert block(queue, "rate_limits") == {
        "max_dispatches_per_second": "${each.value.max_dispatches_per_second}",
        "max_concurrent_dispatches": "${each.value.max_concurrent_dispatches}",
    }
    assert block(queue, "retry_config") == {
        "max_attempts": "${each.value.max_attempts}",
        "min_backoff": "${each.value.min_backoff_s}s",
        "max_backoff": "${each.value.max_backoff_s}s",
        "max_doublings": "${each.value.max_doublings}",
    }
    token = block(block(queue, "http_target"), "oidc_token")
    assert expr(token["service_account_email"]) == "google_service_account.tasks_invoker.email"
    assert expr(token["audience"]) == "each.value.audience"


def test_queue_audiences_are_the_receivers_base_urls() -> None:
    """Runner queues carry runner_url(shard), the webhook queue the sweeper URL: the
    audiences runner/app.py and functions/auth.py verify."""
    loc = tf.module().locals
    shard_expr = expr(loc["shard_queues"])
    assert shard_expr.count("audience = local.runner_urls[shard]") == 2
    assert "audience = local.sweeper_url" in expr(loc["queues"])
    assert "audience=settings.runner_url(settings.shard_id)" in (ROOT / "runner/app.py").read_text()
    assert "audience=settings.sweeper_url" in (ROOT / "functions/auth.py").read_text()


def test_receivers_outlast_the_dispatch_deadlines() -> None:
    """Runner and sweeper request timeouts cover the per-task dispatch deadlines the code sets."""
    m = tf.module()
    runner_timeout = m.variables["runner_request_timeout_seconds"]
    assert runner_timeout["default"] >= 60
    assert ">= 60" in expr(block(runner_timeout, "validation")["condition"])
    sweeper = m.variables["sweeper_limits"]
    assert sweeper["default"]["timeout_seconds"] >= 30
    sources = [
        (ROOT / p).read_text()
        for p in ("wagate/services/outbox.py", "wagate/services/sessions.py", "runner/inbound.py")
    ]
    deadlines = [
        float(d)
        for s in sources
        for d in re.findall(r"dispatch_deadline_s[:=][^=\n]*?(\d+(?:\.\d+)?)", s)
    ]
    assert deadlines and max(deadlines) <= runner_timeout["default"]


# ---------------------------------------------------------------- functions


def test_function_entry_points_and_runtime_match_functions_main() -> None:
    import functions.main as entry

    m = tf.module()
    assert m.locals["functions_runtime"] == "python311"
    requires = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11"' in requires
    for name in ("api", "sweeper"):
        fn = m.resource("google_cloudfunctions2_function", name)
        build = block(fn, "build_config")
        assert build["entry_point"] == name
        assert expr(build["runtime"]) == "local.functions_runtime"
        assert callable(getattr(entry, name)), f"functions.main has no {name}"
        source = block(block(build, "source"), "storage_source")
        assert expr(source["object"]) == "google_storage_bucket_object.functions_source.name"
        service = block(fn, "service_config")
        assert expr(service["service_account_email"]) == f"google_service_account.{name}.email"
        assert expr(fn["name"]) == f"local.{name}_name"


def test_function_ingress_and_timeouts() -> None:
    m = tf.module()
    api = block(m.resource("google_cloudfunctions2_function", "api"), "service_config")
    sweeper = block(m.resource("google_cloudfunctions2_function", "sweeper"), "service_config")
    assert api["ingress_settings"] == "ALLOW_ALL"
    assert sweeper["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert m.variables["api_limits"]["default"]["timeout_seconds"] == 30  # SPEC §6


@pytest.mark.parametrize("component", ["api", "sweeper"])
def test_functions_serve_as_many_requests_at_once_as_the_platform_sends(component: str) -> None:
    """The functions framework's gunicorn defaults to 4 threads per CPU: THREADS must follow
    max_instance_request_concurrency, here and in the local stack."""
    m = tf.module()
    fn = m.resource("google_cloudfunctions2_function", component)
    limits = f"var.{component}_limits.concurrency"
    assert block(fn, "service_config")["max_instance_request_concurrency"] == "${" + limits + "}"
    assert f"THREADS = tostring({limits})" in expr(m.locals[f"{component}_env"])
    default = m.variables[f"{component}_limits"]["default"]["concurrency"]
    assert FUNCTION_THREADS[component] == default


def test_the_routes_infra_targets_exist() -> None:
    api = (ROOT / "functions/api.py").read_text() + (ROOT / "functions/health.py").read_text()
    sweeper = (ROOT / "functions/sweeper.py").read_text()
    runner = (ROOT / "runner/app.py").read_text()
    assert '"/v1/health"' in api
    assert '@router.route("/sweep", methods=["POST"])' in sweeper
    assert '@router.route("/webhooks/deliver", methods=["POST"])' in sweeper
    assert '@router.route("/maintenance", methods=["POST"])' in sweeper
    for route in (
        'web.get("/healthz"',
        'web.get("/readyz"',
        'web.post("/tasks/send"',
        'web.post("/tasks/control"',
    ):
        assert route in runner, route


# ---------------------------------------------------------------- runner service


def test_runner_service_shape() -> None:
    run = tf.module().resource("google_cloud_run_v2_service", "runner")
    template = block(run, "template")
    assert block(template, "scaling") == {"min_instance_count": 1, "max_instance_count": 1}
    assert template["session_affinity"] is False
    assert template["timeout"] == "${var.runner_request_timeout_seconds}s"
    assert expr(template["service_account"]) == "google_service_account.runner.email"
    # All traffic, but only tasks-invoker and the api may invoke (the IAM grants above).
    assert run["ingress"] == "INGRESS_TRAFFIC_ALL"
    container = block(template, "containers")
    resources = block(container, "resources")
    assert resources["cpu_idle"] is False
    assert block(container, "ports") == {"container_port": 8080}
    startup = block(container, "startup_probe")
    liveness = block(container, "liveness_probe")
    assert block(startup, "http_get") == {"path": "/healthz"}
    assert block(liveness, "http_get") == {"path": "/healthz"}
    # Startup may take a while (imports, listening) but is bounded.
    assert 20 <= startup["period_seconds"] * startup["failure_threshold"] <= 240


def test_runner_image_is_pinned() -> None:
    validation = block(tf.module().variables["runner_image"], "validation")
    condition = expr(validation["condition"])
    assert "sha256" in condition and ':latest"' in condition
    live = tf.root()
    assert "runner:${var.runner_image_tag}" in live.locals["runner_image"]
    assert 'var.runner_image_tag != "latest"' in expr(
        block(live.variables["runner_image_tag"], "validation")["condition"]
    )


# ---------------------------------------------------------------- service accounts and IAM

EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    "api": {
        ("project", "roles/datastore.user"),
        ("project", "roles/cloudtasks.viewer"),
        ("queues:send", "roles/cloudtasks.enqueuer"),
        ("queues:control", "roles/cloudtasks.enqueuer"),
        ("service_account:tasks_invoker", "roles/iam.serviceAccountUser"),
        ("bucket:media", "roles/storage.objectAdmin"),
        ("secret:backup_keys", "roles/secretmanager.secretAccessor"),
        ("secret:admin_key", "roles/secretmanager.secretAccessor"),
        ("run:runners", "roles/run.invoker"),  # POST /queries: number checks and groups
    },
    "sweeper": {
        ("project", "roles/datastore.user"),
        ("queues:send", "roles/cloudtasks.enqueuer"),
        ("queues:webhook", "roles/cloudtasks.enqueuer"),  # alert notices
        ("service_account:tasks_invoker", "roles/iam.serviceAccountUser"),
        ("bucket:backups", "roles/storage.objectAdmin"),  # maintenance: orphan backups
        ("secret:backup_keys", "roles/secretmanager.secretAccessor"),
        ("secret:alert_webhook_secret", "roles/secretmanager.secretAccessor"),
    },
    "runner": {
        ("project", "roles/datastore.user"),
        ("queues:webhook", "roles/cloudtasks.enqueuer"),
        ("queues:send", "roles/cloudtasks.taskRunner"),
        ("service_account:tasks_invoker", "roles/iam.serviceAccountUser"),
        ("bucket:backups", "roles/storage.objectAdmin"),
        ("bucket:media", "roles/storage.objectViewer"),  # the real engine sends uploads
        ("bucket:media", "roles/storage.objectCreator"),  # received files, written once
        # Signs received files' URLs with IAM signBlob, as itself (it has no key).
        ("service_account:runner", "roles/iam.serviceAccountTokenCreator"),
        ("secret:backup_keys", "roles/secretmanager.secretAccessor"),
    },
    "tasks_invoker": {
        ("run:runners", "roles/run.invoker"),
        ("run:sweeper", "roles/run.invoker"),
    },
}

# Every IAM resource of the module; a new one must be added to the grants above.
KNOWN_IAM_RESOURCES = {
    "google_project_iam_member.component",
    "google_cloud_tasks_queue_iam_member.component",
    "google_service_account_iam_member.act_as_tasks_invoker",
    "google_service_account_iam_member.runner_signs_as_itself",  # signed media URLs
    "google_storage_bucket_iam_member.component",
    "google_secret_manager_secret_iam_member.accessor",
    "google_cloud_run_v2_service_iam_member.invoker_runners",
    "google_cloud_run_v2_service_iam_member.api_queries_runners",
    "google_cloud_run_v2_service_iam_member.invoker_sweeper",
    "google_cloud_run_v2_service_iam_member.api_public",
    "google_kms_crypto_key_iam_member.backup_cmek",  # the GCS service agent, for CMEK
    "google_project_iam_audit_config.storage",
    "google_project_iam_audit_config.secretmanager",
    "google_pubsub_topic_iam_member.runner_publishes",  # runners publish tenants' events
}


def actual_grants() -> dict[str, set[tuple[str, str]]]:
    m = tf.module()
    loc = m.locals
    grants: dict[str, set[tuple[str, str]]] = {c: set() for c in EXPECTED_GRANTS}
    assert (
        expr(m.resource("google_project_iam_member", "component")["for_each"])
        == "local.project_grants"
    )
    for component, roles in loc["project_roles"].items():
        grants[component] |= {("project", role) for role in roles}
    assert (
        expr(m.resource("google_cloud_tasks_queue_iam_member", "component")["for_each"])
        == "local.queue_grants"
    )
    assert "if contains(kinds, queue.kind)" in expr(loc["queue_grants"])
    for component, roles in loc["queue_roles"].items():
        for role, kinds in roles.items():
            grants[component] |= {(f"queues:{kind}", role) for kind in kinds}
    assert (
        expr(m.resource("google_storage_bucket_iam_member", "component")["for_each"])
        == "local.bucket_grants"
    )
    for component, buckets in loc["bucket_roles"].items():
        for bucket, roles in buckets.items():
            grants[component] |= {(f"bucket:{bucket}", role) for role in roles}
    accessor = m.resource("google_secret_manager_secret_iam_member", "accessor")
    assert expr(accessor["for_each"]) == "local.secret_accessors"
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    for name, secret in loc["secrets"].items():
        for component in secret["accessor"]:
            grants[component].add((f"secret:{name}", accessor["role"]))
    act_as = m.resource("google_service_account_iam_member", "act_as_tasks_invoker")
    assert expr(act_as["for_each"]) == "local.component_sa_emails"
    assert expr(act_as["service_account_id"]) == "google_service_account.tasks_invoker.name"
    for component in loc["component_sa_emails"]:
        grants[component].add(("service_account:tasks_invoker", act_as["role"]))
    signs = m.resource("google_service_account_iam_member", "runner_signs_as_itself")
    assert expr(signs["service_account_id"]) == "google_service_account.runner.name"
    assert signs["member"] == "serviceAccount:${google_service_account.runner.email}"
    grants["runner"].add(("service_account:runner", signs["role"]))
    for name, target in (("invoker_runners", "runners"), ("invoker_sweeper", "sweeper")):
        binding = m.resource("google_cloud_run_v2_service_iam_member", name)
        assert binding["member"] == "serviceAccount:${google_service_account.tasks_invoker.email}"
        grants["tasks_invoker"].add((f"run:{target}", binding["role"]))
    queries = m.resource("google_cloud_run_v2_service_iam_member", "api_queries_runners")
    assert expr(queries["for_each"]) == "google_cloud_run_v2_service.runner"
    assert queries["member"] == "serviceAccount:${google_service_account.api.email}"
    grants["api"].add(("run:runners", queries["role"]))
    return grants


def test_each_service_account_has_only_the_expected_roles() -> None:
    assert actual_grants() == EXPECTED_GRANTS


def test_no_unlisted_or_authoritative_iam() -> None:
    m = tf.module()
    iam = {
        f"{type_}.{name}"
        for type_, named in m.resources.items()
        if "_iam_" in type_
        for name in named
    }
    assert iam == KNOWN_IAM_RESOURCES
    assert not [r for r in iam if r.split(".")[0].endswith(("_iam_binding", "_iam_policy"))]
    forbidden = {
        "roles/owner",
        "roles/editor",
        "roles/viewer",
        "roles/iam.serviceAccountUser",
        "roles/iam.serviceAccountTokenCreator",
        "roles/storage.admin",
        "roles/datastore.owner",
    }
    for roles in m.locals["project_roles"].values():
        assert not forbidden & set(roles)


def test_only_the_api_is_public_and_components_run_as_their_accounts() -> None:
    m = tf.module()
    public = m.resource("google_cloud_run_v2_service_iam_member", "api_public")
    assert public["member"] == "allUsers"
    assert expr(public["name"]) == "google_cloudfunctions2_function.api.name"
    assert public["role"] == "roles/run.invoker"
    assert m.all_text.count('"allUsers"') == 1
    accounts = {
        name: body["account_id"] for name, body in m.resources["google_service_account"].items()
    }
    assert set(accounts) == {"api", "sweeper", "runner", "tasks_invoker"}
    scheduler = block(m.resource("google_cloud_scheduler_job", "sweep"), "http_target")
    token = block(scheduler, "oidc_token")
    assert expr(token["service_account_email"]) == "google_service_account.tasks_invoker.email"


# ---------------------------------------------------------------- secrets


SECRET_LITERALS = [
    # 40+ base64 characters with digits and capitals: a key (32 bytes are 44 characters).
    (
        re.compile(
            r"(?<![A-Za-z0-9+/=])(?=[A-Za-z0-9+/]*[0-9])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{40,}={0,2}"
        ),
        "a base64 key",
    ),
    (re.compile(r"[\w-]{1,64}:[A-Za-z0-9+/]{40,}={0,2}"), "a key ring entry"),
    (re.compile(r"wg_(live|admin)_"), "a wagate API key"),
    (re.compile(r"secret_data"), "a secret value in Terraform"),
    (re.compile(r"google_secret_manager_secret_version"), "a secret version managed by Terraform"),
    (re.compile(r"BEGIN [A-Z ]*PRIVATE KEY"), "a private key"),
]


def test_no_secret_value_in_terraform() -> None:
    """The environments' sizes are the only tfvars in the repository, and hold no secret."""
    sizes = {tf.ROOT_DIR / "envs" / f"{env}.tfvars" for env in tf.ENVS}
    for path in sorted(tf.TERRAFORM.rglob("*.tfvars*")):
        assert path in sizes, f"{path}: only envs/<env>.tfvars are kept in the repository"
    for path in sorted(
        [*tf.TERRAFORM.rglob("*.tf"), *tf.TERRAFORM.rglob("*.tfvars"), *tf.TERRAFORM.rglob("*.hcl")]
    ):
        text = path.read_text()
        for pattern, what in SECRET_LITERALS:
            assert not pattern.search(text), f"{path.relative_to(ROOT)} contains {what}"


def test_secrets_are_containers_with_automatic_replication() -> None:
    secret = tf.module().resource("google_secret_manager_secret", "this")
    assert block(secret, "replication") == {"auto": [{}]}
    assert expr(secret["for_each"]) == "local.secrets"


def test_outputs_expose_no_secret() -> None:
    configs = [tf.module(), tf.root()]
    for config in configs:
        for name, output in config.outputs.items():
            value = json.dumps(output["value"])
            assert "secret_data" not in value and "secret_version" not in value, name
            assert "secret" not in name or name == "secret_ids", name
            assert output.get("description"), f"output {name} has no description"


# ---------------------------------------------------------------- buckets


def test_backup_bucket_settings() -> None:
    m = tf.module()
    bucket = m.resource("google_storage_bucket", "backups")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert block(bucket, "versioning") == {"enabled": True}
    conditions = [block(rule, "condition") for rule in blocks(bucket, "lifecycle_rule")]
    actions = [block(rule, "action") for rule in blocks(bucket, "lifecycle_rule")]
    assert all(a == {"type": "Delete"} for a in actions)
    assert {
        "with_state": "ARCHIVED",
        "num_newer_versions": "${var.backup_noncurrent_versions_kept + 1}",
    } in conditions
    assert {
        "with_state": "ARCHIVED",
        "days_since_noncurrent_time": "${var.backup_noncurrent_max_age_days}",
    } in conditions
    (encryption,) = dynamic(bucket, "encryption")
    assert "var.backup_kms_key_name == null" in expr(encryption["for_each"])
    assert expr(bucket["name"]) == "local.backup_bucket_name"


@pytest.mark.parametrize("name", ["backups", "media", "functions_source"])
def test_every_bucket_is_private_and_uniform(name: str) -> None:
    bucket = tf.module().resource("google_storage_bucket", name)
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert block(bucket, "versioning") == {"enabled": True}


# ---------------------------------------------------------------- firestore

MODELS: dict[str, type[BaseModel]] = {
    "messages": MessageDoc,
    "sessions": SessionDoc,
    "idempotency": IdempotencyDoc,
    "inbound": InboundDoc,
    "recovery_actions": RecoveryAction,
    "rate_limits": RateLimitShard,
    "pending": PendingSend,
    "webhook_deliveries": WebhookDeliveryDoc,
    "events": EventLogDoc,
    "contacts": ContactDoc,
    "group_creates": GroupCreateDoc,
}


def test_firestore_indexes_name_real_fields() -> None:
    loc = tf.module().locals
    for name, index in loc["firestore_indexes"].items():
        model = MODELS[index["collection"]]
        for spec in index["fields"]:
            field, _, order = spec.partition(":")
            assert field in model.model_fields, (
                f"index {name}: {field} is not a field of {model.__name__}"
            )
            assert order in ("", "DESCENDING", "ASCENDING")
    for name, spec in loc["firestore_unindexed_fields"].items():
        assert spec["field"] in MODELS[spec["collection"]].model_fields, name


def test_firestore_covers_the_composite_queries_of_the_code() -> None:
    indexes = {
        (i["collection"], tuple(i["fields"]))
        for i in tf.module().locals["firestore_indexes"].values()
    }
    assert ("messages", ("status", "updated_at")) in indexes  # cleanup, dead-letters list
    assert ("messages", ("session_id", "created_at:DESCENDING")) in indexes  # list messages
    assert ("pending", ("chat", "created_at")) in indexes  # chat order (runner OrderGate)
    assert ("sessions", ("tenant_id", "created_at")) in indexes  # list sessions
    for filters in ((), ("session_id",), ("state",), ("session_id", "state")):
        fields = ("tenant_id", *filters, "created_at:DESCENDING")
        assert ("webhook_deliveries", fields) in indexes  # GET /v1/webhooks/deliveries
    assert ("events", ("tenant_id", "seq")) in indexes  # GET /v1/events/stream
    assert ("events", ("tenant_id", "session_id", "seq")) in indexes  # … ?session_id=
    db = tf.module().resource("google_firestore_database", "this")
    assert db["name"] == "(default)" and db["type"] == "FIRESTORE_NATIVE"


def test_ttl_fields_hold_expiry_times_not_creation_times() -> None:
    """Firestore deletes a document once its TTL field is in the past: a creation timestamp
    would delete everything within a day."""
    for name, spec in tf.module().locals["firestore_ttl_fields"].items():
        assert spec["field"] not in {"created_at", "received_at", "at", "ts", "updated_at"}, name


def test_ttl_fields_are_written_by_the_code() -> None:
    for spec in tf.module().locals["firestore_ttl_fields"].values():
        assert spec["field"] in MODELS[spec["collection"]].model_fields


# ---------------------------------------------------------------- scheduler


def test_scheduler_posts_to_the_sweeper_every_minute_with_its_audience() -> None:
    m = tf.module()
    job = m.resource("google_cloud_scheduler_job", "sweep")
    assert m.variables["sweeper_schedule"]["default"] == "* * * * *"
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == "${local.sweeper_url}/sweep"
    assert expr(block(target, "oidc_token")["audience"]) == "local.sweeper_url"


def test_scheduler_runs_maintenance_hourly_as_the_tasks_invoker() -> None:
    m = tf.module()
    job = m.resource("google_cloud_scheduler_job", "maintenance")
    assert m.variables["maintenance_schedule"]["default"] == "17 * * * *"
    assert expr(job["schedule"]) == "var.maintenance_schedule"
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == "${local.sweeper_url}/maintenance"
    token = block(target, "oidc_token")
    assert expr(token["audience"]) == "local.sweeper_url"
    assert expr(token["service_account_email"]) == "google_service_account.tasks_invoker.email"


# ---------------------------------------------------------------- monitoring

SPEC_ALERT_KINDS = {
    "session_failed",
    "reconnect_storm",
    "backup_failing",
    "dead_letters_growing",
    "store_latency",
    "memory_growth",
    "lease_lost",
}


def test_an_alert_policy_for_every_spec_alert_kind() -> None:
    assert set(tf.module().locals["alert_policies"]) >= SPEC_ALERT_KINDS


def test_log_metrics_match_log_lines_the_code_emits() -> None:
    code = "\n".join(
        p.read_text()
        for folder in ("runner", "functions", "wagate")
        for p in (ROOT / folder).rglob("*.py")
    )
    for name, metric in tf.module().locals["log_metrics"].items():
        (message,) = re.findall(r'jsonPayload\.message="([^"]+)"', metric["filter"])
        if name == "health_alerts":
            continue  # see test_raised_health_alerts_are_logged
        assert re.search(r"log\.\w+\(\s*" + re.escape(json.dumps(message)), code), (name, message)


def test_every_alert_kind_the_code_raises_reaches_a_policy() -> None:
    raised: set[str] = set()
    for path in (ROOT / "runner").rglob("*.py"):
        raised |= set(re.findall(r"alerts\.raise_alert,\s*\"([a-z_]+)\"", path.read_text()))
    assert raised, "found no raise_alert calls"
    wired = "\n".join(json.dumps(p) for p in tf.module().locals["alert_policies"].values())
    for kind in raised:
        assert f'\\"{kind}\\"' in wired, kind


def test_raised_health_alerts_are_logged() -> None:
    assert '"health alert raised"' in (ROOT / "wagate/services/alerts.py").read_text()


# ---------------------------------------------------------------- hygiene

_REF = re.compile(r"(?<![\w.])(local|var)\.([a-z0-9_]+)")
_RES = re.compile(r"(?<![\w.])(google_[a-z0-9_]+)\.([a-z0-9_]+)")
_DATA = re.compile(r"(?<![\w.])data\.([a-z0-9_]+)\.([a-z0-9_]+)")
_MOD = re.compile(r"(?<![\w.])module\.wagate\.([a-z0-9_]+)")


def _body_text(config: tf.Config) -> str:
    parts: list[Any] = [
        config.resources,
        config.data,
        config.locals,
        config.outputs,
        config.modules,
        config.checks,
    ]
    parts += [
        {k: {kk: vv for kk, vv in v.items() if kk != "validation"}}
        for k, v in config.variables.items()
    ]
    parts += [v.get("validation", []) for v in config.variables.values()]
    return json.dumps(parts)


def test_every_reference_resolves() -> None:
    m = tf.module()
    text = _body_text(m)
    check_data = {
        (t, n)
        for c in m.checks.values()
        for d in c.get("data", [])
        for t, named in d.items()
        for n in named
    }
    for kind, name in _REF.findall(text):
        table = m.locals if kind == "local" else m.variables
        assert name in table, f"{kind}.{name} is not defined"
    for type_, name in _RES.findall(text):
        assert name in m.resources.get(type_, {}), f"{type_}.{name} is not declared"
    for type_, name in _DATA.findall(text):
        assert name in m.data.get(type_, {}) or (type_, name) in check_data, f"data.{type_}.{name}"
    live = tf.root()
    call = live.modules["wagate"]
    assert call["source"] == "../modules/wagate"
    args = {k for k in call if k not in ("source", "depends_on", "providers")}
    assert args <= set(m.variables), args - set(m.variables)
    required = {n for n, v in m.variables.items() if "default" not in v}
    assert required <= args, required - args
    live_text = _body_text(live)
    for kind, name in _REF.findall(live_text):
        assert name in (live.locals if kind == "local" else live.variables), f"{kind}.{name}"
    for name in _MOD.findall(live_text):
        assert name in m.outputs, f"module.wagate.{name}"


def test_each_environment_sets_every_input_it_must_and_only_declared_ones() -> None:
    """One root, sized per environment by envs/<env>.tfvars; Cloud Build passes the rest."""
    live = tf.root()
    by_cloud_build = {"project_id", "region", "runner_image_tag", "functions_source_dir"}
    required = {n for n, v in live.variables.items() if "default" not in v}
    for env in tf.ENVS:
        values = tf.tfvars(env)
        assert set(values) <= set(live.variables), set(values) - set(live.variables)
        assert required <= set(values) | by_cloud_build, required - set(values) - by_cloud_build
        assert values["environment"] == env
        assert set(values["api_limits"]) == {
            "min_instances",
            "max_instances",
            "concurrency",
            "memory",
            "cpu",
            "timeout_seconds",
        }
        assert tf.backend(env) == {"prefix": f"wagate/{env}"}
    dev, prod = tf.tfvars("dev"), tf.tfvars("prod")
    assert prod["deletion_protection"] is True and dev["deletion_protection"] is False
    assert prod["shard_count"] >= dev["shard_count"] >= 1
    assert prod["api_limits"]["min_instances"] >= 1  # no cold start in production


def test_every_variable_is_typed_and_described() -> None:
    for config in (tf.module(), tf.root()):
        for name, variable in config.variables.items():
            assert variable.get("type"), f"{config.path.name}: variable {name} has no type"
            assert len(str(variable.get("description", ""))) > 10, f"{config.path.name}: {name}"


def test_one_file_per_concern() -> None:
    expected = {
        "apis.tf": {"google_project_service"},
        "firestore.tf": {
            "google_firestore_database",
            "google_firestore_index",
            "google_firestore_field",
        },
        "queues.tf": {"google_cloud_tasks_queue"},
        "functions.tf": {"google_cloudfunctions2_function"},
        "run.tf": {"google_cloud_run_v2_service"},
        "scheduler.tf": {"google_cloud_scheduler_job"},
        "secrets.tf": {"google_secret_manager_secret"},
        "monitoring.tf": {"google_logging_metric", "google_monitoring_alert_policy"},
        "registry.tf": {"google_artifact_registry_repository"},
        "iam.tf": {"google_service_account"},
    }
    m = tf.module()
    for file, types in expected.items():
        declared = {key.split(".")[0] for key, f in m.resource_file.items() if f == file}
        assert types <= declared, (file, types - declared)
    for name in ("variables.tf", "outputs.tf", "versions.tf"):
        assert name in m.text


def test_provider_versions_are_constrained() -> None:
    for config in (tf.module(), tf.root()):
        text = config.text["versions.tf"]
        for provider in ("hashicorp/google", "hashicorp/google-beta", "hashicorp/archive"):
            assert f'source  = "{provider}"' in text, (config.path, provider)
        assert text.count("version =") >= 3


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(tf.TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_files_exist() -> None:
    for name in (
        "apis",
        "firestore",
        "storage",
        "secrets",
        "queues",
        "functions",
        "run",
        "scheduler",
        "iam",
        "monitoring",
        "registry",
        "variables",
        "outputs",
        "versions",
    ):
        assert (tf.MODULE_DIR / f"{name}.tf").is_file(), name
    for name in ("main", "variables", "outputs", "versions"):
        assert Path(tf.ROOT_DIR / f"{name}.tf").is_file(), name
    for env in tf.ENVS:
        for name in (f"{env}.tfvars", f"{env}.backend.hcl"):
            assert Path(tf.ROOT_DIR / "envs" / name).is_file(), name


def test_the_runners_may_publish_to_the_events_topics_and_nothing_else() -> None:
    m = tf.module()
    grant = m.resource("google_pubsub_topic_iam_member", "runner_publishes")
    assert grant["role"] == "roles/pubsub.publisher"
    assert "google_service_account.runner.email" in str(grant["member"])
    assert "google_pubsub_topic.events" in str(grant["for_each"])
    assert "pubsub.googleapis.com" in str(m.locals["services"])
