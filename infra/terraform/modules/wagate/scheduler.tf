# Cloud Scheduler: POST <sweeper_url>/sweep every minute and <sweeper_url>/maintenance every
# hour, with an OIDC token. The sweeper checks the token's audience (WAGATE_SWEEPER_URL) and its
# email (WAGATE_TASKS_SERVICE_ACCOUNT), so the jobs sign as the same tasks-invoker account that
# Cloud Tasks uses.

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
  name        = "${local.prefix}-sweep"
  description = "wagate sweeper: re-enqueue stuck messages, expire leases, raise alerts"
  schedule    = var.sweeper_schedule
  time_zone   = "Etc/UTC"

  # A sweep that outlives the next tick is simply followed by the next one.
  attempt_deadline = "${min(var.sweeper_limits.timeout_seconds, 1800)}s"

  retry_config {
    retry_count = 0 # the next minute's run is the retry
  }

  http_target {
    http_method = "POST"
    uri         = "${local.sweeper_url}/sweep"

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = local.sweeper_url
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_v2_service_iam_member.invoker_sweeper,
  ]
}

# Maintenance (docs/operations.md): prune by retention, age key material, remove orphan
# backups. Each pass stops at a per-run limit and the next run continues, so hourly keeps up.
resource "google_cloud_scheduler_job" "maintenance" {
  project     = var.project_id
  region      = var.region
  name        = "${local.prefix}-maintenance"
  description = "wagate maintenance: retention, key material age, orphan backups"
  schedule    = var.maintenance_schedule
  time_zone   = "Etc/UTC"

  attempt_deadline = "${min(var.sweeper_limits.timeout_seconds, 1800)}s"

  retry_config {
    retry_count = 0 # the next run continues where this one stopped
  }

  http_target {
    http_method = "POST"
    uri         = "${local.sweeper_url}/maintenance"

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = local.sweeper_url
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_v2_service_iam_member.invoker_sweeper,
  ]
}
