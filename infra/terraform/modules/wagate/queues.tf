# Cloud Tasks queues. The source of truth is wagate/queues.py (all_queues): the same names and
# the same rate and retry settings, for every shard. tests/infra/test_terraform.py compares
# the two; change both together.
#
#   <prefix>-s<n>-high|normal|bulk   sends of shard n, by priority  → runner n /tasks/send
#   <prefix>-s<n>-control            session start/stop/logout     → runner n /tasks/control
#   <prefix>-webhooks                signed webhook deliveries      → sweeper /webhooks/deliver
#
# Dispatch deadlines are per task (set by the code: 60 s runner tasks, 30 s webhooks); the
# receivers' request timeouts (run.tf, functions.tf) are longer.

locals {
  send_queue_rates = {
    high   = { max_dispatches_per_second = 500, max_concurrent_dispatches = 200 }
    normal = { max_dispatches_per_second = 200, max_concurrent_dispatches = 100 }
    bulk   = { max_dispatches_per_second = 50, max_concurrent_dispatches = 50 }
  }

  # max_attempts = -1: unlimited; the runner decides when a message is dead (max_send_attempts).
  send_queue_retry = { min_backoff_s = 1, max_backoff_s = 300, max_doublings = 8, max_attempts = -1 }

  control_queue_settings = {
    max_dispatches_per_second = 100
    max_concurrent_dispatches = 50
    min_backoff_s             = 1
    max_backoff_s             = 60
    max_doublings             = 5
    max_attempts              = -1
  }

  webhook_queue_settings = {
    max_dispatches_per_second = 500
    max_concurrent_dispatches = 200
    min_backoff_s             = 2
    max_backoff_s             = 3600
    max_doublings             = 10
    max_attempts              = 50
  }

  shard_queues = merge([
    for shard in range(var.shard_count) : merge(
      {
        for priority, rate in local.send_queue_rates : "${local.prefix}-s${shard}-${priority}" => merge(
          rate, local.send_queue_retry, { kind = "send", audience = local.runner_urls[shard] }
        )
      },
      {
        "${local.prefix}-s${shard}-control" = merge(
          local.control_queue_settings, { kind = "control", audience = local.runner_urls[shard] }
        )
      },
    )
  ]...)

  queues = merge(local.shard_queues, {
    "${local.prefix}-webhooks" = merge(local.webhook_queue_settings, { kind = "webhook", audience = local.sweeper_url })
  })
}

resource "google_cloud_tasks_queue" "this" {
  for_each = local.queues

  project  = var.project_id
  location = var.region
  name     = each.key

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = each.value.max_attempts
    min_backoff   = "${each.value.min_backoff_s}s"
    max_backoff   = "${each.value.max_backoff_s}s"
    max_doublings = each.value.max_doublings
  }

  # Queue-level token: the receivers verify the audience against their *base* URL
  # (runner_url(shard), sweeper_url), while a task-level token without an audience would carry
  # the full task URL. Setting it here makes every dispatch carry the audience they check.
  http_target {
    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = each.value.audience
    }
  }

  stackdriver_logging_config {
    sampling_ratio = var.tasks_log_sampling_ratio
  }

  depends_on = [google_project_service.this]
}
