# One service account per component, each with only what its code does. tests/infra keeps an
# expected table of these grants; change both together.
#
#   api            Firestore; enqueue send + control tasks (as tasks-invoker); list queues
#                  (/v1/health pings Cloud Tasks); media objects; backup-keys (seals webhook
#                  secrets) and admin-key
#   sweeper        Firestore; re-enqueue send tasks (as tasks-invoker); backup-keys (opens
#                  webhook secrets to sign deliveries)
#   runner         Firestore; enqueue webhook tasks (as tasks-invoker); run its pending send
#                  tasks now after a takeover; backup objects; backup-keys
#   tasks-invoker  the identity in Cloud Tasks' and Cloud Scheduler's OIDC tokens: may invoke
#                  the runners and the sweeper, nothing else

resource "google_service_account" "api" {
  project      = var.project_id
  account_id   = "${local.prefix}-api"
  display_name = "wagate api function"
  description  = "Runs the public api function."
}

resource "google_service_account" "sweeper" {
  project      = var.project_id
  account_id   = "${local.prefix}-sweeper"
  display_name = "wagate sweeper function"
  description  = "Runs the sweeper function (reconciliation, webhook delivery)."
}

resource "google_service_account" "runner" {
  project      = var.project_id
  account_id   = "${local.prefix}-runner"
  display_name = "wagate runners"
  description  = "Runs the per-shard Cloud Run runners that hold the WhatsApp sockets."
}

resource "google_service_account" "tasks_invoker" {
  project      = var.project_id
  account_id   = "${local.prefix}-tasks-invoker"
  display_name = "wagate task and scheduler invoker"
  description  = "Identity of Cloud Tasks and Cloud Scheduler OIDC tokens sent to the runners and the sweeper."
}

locals {
  component_sa_emails = {
    api     = google_service_account.api.email
    sweeper = google_service_account.sweeper.email
    runner  = google_service_account.runner.email
  }

  project_roles = {
    "api/datastore.user"     = { component = "api", role = "roles/datastore.user" }
    "api/cloudtasks.viewer"  = { component = "api", role = "roles/cloudtasks.viewer" }
    "sweeper/datastore.user" = { component = "sweeper", role = "roles/datastore.user" }
    "runner/datastore.user"  = { component = "runner", role = "roles/datastore.user" }
  }

  send_queue_names    = [for name, q in local.queues : name if q.kind == "send"]
  control_queue_names = [for name, q in local.queues : name if q.kind == "control"]
  webhook_queue_names = [for name, q in local.queues : name if q.kind == "webhook"]

  queue_grants = merge(
    { for q in concat(local.send_queue_names, local.control_queue_names) : "${q}/api/enqueuer" => { queue = q, component = "api", role = "roles/cloudtasks.enqueuer" } },
    { for q in local.send_queue_names : "${q}/sweeper/enqueuer" => { queue = q, component = "sweeper", role = "roles/cloudtasks.enqueuer" } },
    { for q in local.webhook_queue_names : "${q}/runner/enqueuer" => { queue = q, component = "runner", role = "roles/cloudtasks.enqueuer" } },
    { for q in local.send_queue_names : "${q}/runner/taskRunner" => { queue = q, component = "runner", role = "roles/cloudtasks.taskRunner" } },
  )
}

resource "google_project_iam_member" "component" {
  for_each = local.project_roles

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${local.component_sa_emails[each.value.component]}"
}

resource "google_cloud_tasks_queue_iam_member" "component" {
  for_each = local.queue_grants

  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.this[each.value.queue].name
  role     = each.value.role
  member   = "serviceAccount:${local.component_sa_emails[each.value.component]}"
}

# Creating a task (or a scheduler job) whose OIDC token is signed as tasks-invoker needs
# iam.serviceAccounts.actAs on tasks-invoker — granted on that one account, not the project.
resource "google_service_account_iam_member" "act_as_tasks_invoker" {
  for_each = local.component_sa_emails

  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${each.value}"
}

resource "google_storage_bucket_iam_member" "runner_backups" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.runner.email}"
}

resource "google_storage_bucket_iam_member" "api_media" {
  bucket = google_storage_bucket.media.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.api.email}"
}

resource "google_cloud_run_v2_service_iam_member" "invoker_runners" {
  for_each = google_cloud_run_v2_service.runner

  project  = var.project_id
  location = var.region
  name     = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.tasks_invoker.email}"
}

# Functions (2nd gen) are served by a Cloud Run service of the same name; invoking it takes
# run.invoker on that service.
resource "google_cloud_run_v2_service_iam_member" "invoker_sweeper" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.sweeper.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.tasks_invoker.email}"
}

# The api is public: every /v1 call is authenticated by wagate itself (tenant API keys, the
# admin key), so Cloud Run's IAM check must let anonymous callers through.
resource "google_cloud_run_v2_service_iam_member" "api_public" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Who read a backup or a key, and when.
resource "google_project_iam_audit_config" "storage" {
  count = var.enable_data_access_audit_logs ? 1 : 0

  project = var.project_id
  service = "storage.googleapis.com"
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

resource "google_project_iam_audit_config" "secretmanager" {
  count = var.enable_data_access_audit_logs ? 1 : 0

  project = var.project_id
  service = "secretmanager.googleapis.com"
  audit_log_config {
    log_type = "DATA_READ"
  }
}
