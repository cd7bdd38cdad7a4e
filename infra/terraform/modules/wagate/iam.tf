# One service account per component, each with only what its code does. tests/infra keeps an
# expected table of these grants; change both together.
#
#   api            Firestore; enqueue send + control tasks (as tasks-invoker); list queues
#                  (/v1/health pings Cloud Tasks); media objects; backup-keys (seals webhook
#                  secrets) and admin-key; invoke the runners (POST /queries: number checks,
#                  groups, answered by the session's live socket)
#   sweeper        Firestore; re-enqueue send tasks (as tasks-invoker); enqueue alert notices
#                  on the webhook queue; backup objects (maintenance: orphan backups);
#                  backup-keys (opens webhook secrets to sign deliveries); alert-webhook-secret
#   runner         Firestore; enqueue webhook tasks (as tasks-invoker); run its pending send
#                  tasks now after a takeover; backup objects; backup-keys; media objects
#                  (reads uploads to send them, creates received files) and signing as itself
#                  (the signed URLs of received files: IAM signBlob, no key)
#   tasks-invoker  the identity in Cloud Tasks' and Cloud Scheduler's OIDC tokens: may invoke
#                  the runners and the sweeper, nothing else

resource "google_service_account" "api" {
  project      = var.project_id
  account_id   = "${local.prefix}-api"
  display_name = "wagate api function"
  description  = "Runs the public api function."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "sweeper" {
  project      = var.project_id
  account_id   = "${local.prefix}-sweeper"
  display_name = "wagate sweeper function"
  description  = "Runs the sweeper function (reconciliation, webhook delivery)."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "runner" {
  project      = var.project_id
  account_id   = "${local.prefix}-runner"
  display_name = "wagate runners"
  description  = "Runs the per-shard Cloud Run runners that hold the WhatsApp sockets."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "tasks_invoker" {
  project      = var.project_id
  account_id   = "${local.prefix}-tasks-invoker"
  display_name = "wagate task and scheduler invoker"
  description  = "Identity of Cloud Tasks and Cloud Scheduler OIDC tokens sent to the runners and the sweeper."

  depends_on = [google_project_service.this]
}

locals {
  component_sa_emails = {
    api     = google_service_account.api.email
    sweeper = google_service_account.sweeper.email
    runner  = google_service_account.runner.email
  }

  # The grants, as tables (tests/infra/test_terraform.py holds the expected copy).
  project_roles = {
    api     = ["roles/datastore.user", "roles/cloudtasks.viewer"]
    sweeper = ["roles/datastore.user"]
    runner  = ["roles/datastore.user"]
  }

  # component => role => kinds of queue (send, control, webhook) it is granted on.
  queue_roles = {
    api     = { "roles/cloudtasks.enqueuer" = ["send", "control"] }
    sweeper = { "roles/cloudtasks.enqueuer" = ["send", "webhook"] }
    runner = {
      "roles/cloudtasks.enqueuer"   = ["webhook"]
      "roles/cloudtasks.taskRunner" = ["send"] # RunTask: nudge pending sends after a takeover
    }
  }

  # component => bucket => roles.
  bucket_roles = {
    api     = { media = ["roles/storage.objectAdmin"] }
    sweeper = { backups = ["roles/storage.objectAdmin"] } # maintenance deletes orphan backups
    runner = {
      backups = ["roles/storage.objectAdmin"]
      # The real engines send uploads; every engine stores received files (create-only:
      # a received file is written once, under a name derived from its message).
      media = ["roles/storage.objectViewer", "roles/storage.objectCreator"]
    }
  }

  buckets = {
    backups = google_storage_bucket.backups.name
    media   = google_storage_bucket.media.name
  }

  project_grants = merge([
    for component, roles in local.project_roles : {
      for role in roles : "${component}/${role}" => { component = component, role = role }
    }
  ]...)

  queue_grants = merge(flatten([
    for component, roles in local.queue_roles : [
      for role, kinds in roles : {
        for name, queue in local.queues : "${name}/${component}/${role}" => {
          queue = name, component = component, role = role
        } if contains(kinds, queue.kind)
      }
    ]
  ])...)

  bucket_grants = merge(flatten([
    for component, buckets in local.bucket_roles : [
      for bucket, roles in buckets : {
        for role in roles : "${bucket}/${component}/${role}" => { bucket = bucket, component = component, role = role }
      }
    ]
  ])...)
}

resource "google_project_iam_member" "component" {
  for_each = local.project_grants

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

resource "google_storage_bucket_iam_member" "component" {
  for_each = local.bucket_grants

  bucket = local.buckets[each.value.bucket]
  role   = each.value.role
  member = "serviceAccount:${local.component_sa_emails[each.value.component]}"
}

resource "google_cloud_run_v2_service_iam_member" "invoker_runners" {
  for_each = google_cloud_run_v2_service.runner

  project  = var.project_id
  location = var.region
  name     = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.tasks_invoker.email}"
}

# The api asks a session's runner directly (runner/queries.py), with an ID token of its own
# account; the runner accepts only that account's tokens on /queries.
resource "google_cloud_run_v2_service_iam_member" "api_queries_runners" {
  for_each = google_cloud_run_v2_service.runner

  project  = var.project_id
  location = var.region
  name     = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.api.email}"
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

# The runner signs the URLs of received files (V4 signed URLs) with IAM signBlob as itself: it
# has no key. Token creator on its own account only, not the project.
resource "google_service_account_iam_member" "runner_signs_as_itself" {
  service_account_id = google_service_account.runner.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.runner.email}"
}
