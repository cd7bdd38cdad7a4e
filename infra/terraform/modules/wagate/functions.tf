# Cloud Functions (2nd gen): `api` (public HTTP API) and `sweeper` (Cloud Scheduler every minute,
# webhook deliveries from Cloud Tasks). Both are built from one source zip: a directory staged
# by infra/terraform/scripts/stage_functions.py with a root main.py that re-exports
# functions.main's entry points, the functions/ and wagate/ packages, and a requirements.txt
# holding the runtime part of requirements.lock.

locals {
  functions_runtime = "python311" # the Python of pyproject.toml and runner/Dockerfile
}

resource "google_storage_bucket" "functions_source" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs (source zips); access is audited by Data Access audit logs (google_project_iam_audit_config.storage).
  project  = var.project_id
  name     = "${var.project_id}-${local.prefix}-functions-source"
  location = local.bucket_location
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only build artifacts, recreated by every deploy

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

data "archive_file" "functions_source" {
  type        = "zip"
  source_dir  = var.functions_source_dir
  output_path = "${var.functions_source_dir}.zip"
  excludes    = ["**/__pycache__/**", "**/*.pyc"]
}

# Named by content hash: a changed source is a new object, which redeploys both functions.
resource "google_storage_bucket_object" "functions_source" {
  name   = "functions/${data.archive_file.functions_source.output_sha256}.zip"
  bucket = google_storage_bucket.functions_source.name
  source = data.archive_file.functions_source.output_path
}

locals {
  # THREADS: the functions framework serves with gunicorn, whose default is 4 threads per
  # CPU; without it requests beyond that wait in gunicorn's backlog although the platform
  # sent them as concurrent (max_instance_request_concurrency).
  api_env = merge(local.common_env, {
    WAGATE_SHARD_COUNT        = tostring(var.shard_count)
    WAGATE_SESSIONS_PER_SHARD = tostring(var.sessions_per_shard)
    WAGATE_MEDIA_BUCKET       = google_storage_bucket.media.name
    WAGATE_API_URL            = local.api_url
    THREADS                   = tostring(var.api_limits.concurrency)
  })

  sweeper_env = merge(
    local.common_env,
    {
      WAGATE_SHARD_COUNT   = tostring(var.shard_count)
      WAGATE_SWEEPER_URL   = local.sweeper_url
      WAGATE_BACKUP_BUCKET = google_storage_bucket.backups.name # maintenance: orphan backups
      THREADS              = tostring(var.sweeper_limits.concurrency)
    },
    var.alert_webhook_url != null ? { WAGATE_ALERT_WEBHOOK_URL = var.alert_webhook_url } : {},
  )
}

resource "google_cloudfunctions2_function" "api" {
  #checkov:skip=CKV_GCP_124:The api is the public tenant-facing HTTP API; every /v1 call is authenticated in the app (tenant API keys, admin key). Internal-only ingress would make it unreachable.
  project     = var.project_id
  location    = var.region
  name        = local.api_name
  description = "wagate public API (/v1)"
  labels      = local.labels

  build_config {
    runtime         = local.functions_runtime
    entry_point     = "api"
    service_account = var.functions_build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.api.email
    ingress_settings                 = "ALLOW_ALL" # the public API
    all_traffic_on_latest_revision   = true
    min_instance_count               = var.api_limits.min_instances
    max_instance_count               = var.api_limits.max_instances
    max_instance_request_concurrency = var.api_limits.concurrency
    available_memory                 = var.api_limits.memory
    available_cpu                    = var.api_limits.cpu
    timeout_seconds                  = var.api_limits.timeout_seconds
    environment_variables            = local.api_env

    dynamic "secret_environment_variables" {
      for_each = { for name, s in local.secrets : name => s if contains(s.accessor, "api") }
      content {
        key        = secret_environment_variables.value.env
        project_id = var.project_id
        secret     = google_secret_manager_secret.this[secret_environment_variables.key].secret_id
        version    = secret_environment_variables.value.version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length("${local.api_name}-${local.project_number}") <= 63
      error_message = "Function name plus project number exceeds 63 characters: no deterministic URL. Shorten name_prefix."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.accessor,
    google_project_iam_member.component,
  ]
}

resource "google_cloudfunctions2_function" "sweeper" {
  project     = var.project_id
  location    = var.region
  name        = local.sweeper_name
  description = "wagate sweeper: reconciliation every minute, signed webhook deliveries"
  labels      = local.labels

  build_config {
    runtime         = local.functions_runtime
    entry_point     = "sweeper"
    service_account = var.functions_build_service_account

    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.sweeper.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY" # only Cloud Scheduler and Cloud Tasks call it
    all_traffic_on_latest_revision   = true
    min_instance_count               = 0
    max_instance_count               = var.sweeper_limits.max_instances
    max_instance_request_concurrency = var.sweeper_limits.concurrency
    available_memory                 = var.sweeper_limits.memory
    available_cpu                    = var.sweeper_limits.cpu
    timeout_seconds                  = var.sweeper_limits.timeout_seconds
    environment_variables            = local.sweeper_env

    dynamic "secret_environment_variables" {
      # An optional secret (alert-webhook-secret) is mounted once a version of it is chosen.
      for_each = { for name, s in local.secrets : name => s if contains(s.accessor, "sweeper") && s.version != null }
      content {
        key        = secret_environment_variables.value.env
        project_id = var.project_id
        secret     = google_secret_manager_secret.this[secret_environment_variables.key].secret_id
        version    = secret_environment_variables.value.version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length("${local.sweeper_name}-${local.project_number}") <= 63
      error_message = "Function name plus project number exceeds 63 characters: no deterministic URL. Shorten name_prefix."
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.accessor,
    google_project_iam_member.component,
  ]
}

# After apply: the functions serve the deterministic URLs configured as WAGATE_API_URL,
# WAGATE_SWEEPER_URL, the webhook queue's audience and the scheduler's target.
check "function_urls_are_deterministic" {
  data "google_cloud_run_v2_service" "sweeper" {
    project  = var.project_id
    location = var.region
    name     = google_cloudfunctions2_function.sweeper.name
  }

  data "google_cloud_run_v2_service" "api" {
    project  = var.project_id
    location = var.region
    name     = google_cloudfunctions2_function.api.name
  }

  assert {
    condition     = contains(data.google_cloud_run_v2_service.sweeper.urls, local.sweeper_url) && contains(data.google_cloud_run_v2_service.api.urls, local.api_url)
    error_message = "A function does not serve its deterministic URL; WAGATE_SWEEPER_URL / WAGATE_API_URL would be wrong."
  }
}
