# The runners: one Cloud Run service per shard, exactly one instance each, CPU always allocated
# (the WhatsApp sockets, lease renewals and backups run between requests).
#
# Probes: startup and liveness both use /healthz. /readyz answers 200 only while the instance
# holds its shard lease, and during a rollout the old instance keeps the lease until Cloud Run
# sends it SIGTERM — which happens only after the new revision is ready. Gating startup on
# /readyz would deadlock every deploy. A task that reaches an instance without the lease gets
# 503 + Retry-After and Cloud Tasks retries it; the lease TTL (9 s) bounds the gap.
#
# Shutdown: Cloud Run gives 10 s after SIGTERM (not configurable); the runner drains within 8 s.

locals {
  runner_shards = { for shard, name in local.runner_names : tostring(shard) => name }

  runner_env = merge(
    local.common_env,
    {
      WAGATE_SWEEPER_URL   = local.sweeper_url
      WAGATE_BACKUP_BUCKET = google_storage_bucket.backups.name
      WAGATE_MEDIA_BUCKET  = google_storage_bucket.media.name # received files; uploads to send
      WAGATE_ENGINE        = var.engine
      # Whose OIDC tokens may ask POST /queries (the api's number checks and groups).
      WAGATE_API_SERVICE_ACCOUNT = google_service_account.api.email
      WAGATE_PERSISTENCE         = var.persistence
      WAGATE_STATE_DIR           = "/tmp/wagate-state" # in-memory disk, used by persistence = hybrid
    },
    var.engine == "simulator" ? { WAGATE_SIMULATOR_URL = var.simulator_url } : {},
  )
}

resource "google_cloud_run_v2_service" "runner" {
  for_each = local.runner_shards

  project     = var.project_id
  location    = var.region
  name        = each.value
  description = "wagate runner of shard ${each.key}"
  labels      = merge(local.labels, { shard = each.key })

  # All traffic, guarded by IAM: only tasks-invoker (Cloud Tasks) and the api (POST /queries:
  # number checks, groups) hold run.invoker, and the runner checks the token's account too.
  # Internal-only ingress would refuse the api function, which has no VPC egress
  # (docs/decisions.md, "The api asks the runner directly").
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    labels                           = merge(local.labels, { shard = each.key })
    service_account                  = google_service_account.runner.email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    timeout                          = "${var.runner_request_timeout_seconds}s"
    max_instance_request_concurrency = var.runner_max_concurrency
    session_affinity                 = false

    # min = max = 1: a shard's sockets live in exactly one process (the lease enforces it).
    scaling {
      min_instance_count = 1
      max_instance_count = 1
    }

    containers {
      name  = "runner"
      image = var.runner_image

      ports {
        container_port = 8080 # passed to the runner as $PORT
      }

      resources {
        limits = {
          cpu    = var.runner_cpu
          memory = var.runner_memory
        }
        cpu_idle          = false # CPU always allocated, no throttling between requests
        startup_cpu_boost = true  # restoring every session of the shard is CPU-bound
      }

      env {
        name  = "WAGATE_SHARD_ID"
        value = each.key
      }

      dynamic "env" {
        for_each = local.runner_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = { for name, s in local.secrets : name => s if contains(s.accessor, "runner") }
        content {
          name = env.value.env
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.this[env.key].secret_id
              version = env.value.version
            }
          }
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 1
        failure_threshold     = 30 # up to 60 s to import, connect and listen
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 10
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = length("${each.value}-${local.project_number}") <= 63
      error_message = "Runner name plus project number exceeds 63 characters: Cloud Run gives it no deterministic URL. Shorten name_prefix."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.accessor,
    google_storage_bucket_iam_member.component,
    google_project_iam_member.component,
  ]
}

# After apply: the URLs configured everywhere (WAGATE_RUNNER_URLS, queue audiences) are real.
check "runner_urls_are_deterministic" {
  assert {
    condition = alltrue([
      for shard, service in google_cloud_run_v2_service.runner :
      contains(service.urls, local.runner_urls[tonumber(shard)])
    ])
    error_message = "A runner does not serve its deterministic URL; WAGATE_RUNNER_URLS and the queue audiences would be wrong."
  }
}
