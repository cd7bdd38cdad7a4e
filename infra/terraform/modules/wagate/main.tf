# The wagate module: one deployment of the gateway in one project and region.
# Names and URLs are derived here, once, so that every component is configured with the same
# values (WAGATE_RUNNER_URLS, WAGATE_SWEEPER_URL, queue names …). The resources live in one
# file per concern: apis, firestore, storage, secrets, queues, functions, run, scheduler, iam,
# monitoring, registry.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  prefix         = var.name_prefix
  project_number = data.google_project.this.number

  labels = merge(var.labels, {
    app         = "wagate"
    environment = var.environment
    managed-by  = "terraform"
  })

  firestore_location = coalesce(var.firestore_location, var.region)
  bucket_location    = upper(coalesce(var.bucket_location, var.region))
  backup_bucket_name = coalesce(var.backup_bucket_name, "${var.project_id}-${local.prefix}-backups")
  media_bucket_name  = coalesce(var.media_bucket_name, "${var.project_id}-${local.prefix}-media")

  # Cloud Run's deterministic URLs (https://SERVICE-PROJECT_NUMBER.REGION.run.app) are known
  # before the services exist. The runners and the sweeper verify OIDC audiences against their
  # own URL, so the URL must be in their environment: taking it from the service's `uri`
  # attribute would be a dependency cycle. check.deterministic_urls confirms them after apply.
  runner_names = [for shard in range(var.shard_count) : "${local.prefix}-runner-s${shard}"]
  runner_urls  = [for name in local.runner_names : "https://${name}-${local.project_number}.${var.region}.run.app"]
  api_name     = "${local.prefix}-api"
  sweeper_name = "${local.prefix}-sweeper"
  api_url      = "https://${local.api_name}-${local.project_number}.${var.region}.run.app"
  sweeper_url  = "https://${local.sweeper_name}-${local.project_number}.${var.region}.run.app"

  # Settings every component reads (wagate/config.py); component-specific ones are added in
  # functions.tf and run.tf. Secrets are never here: they come from Secret Manager.
  common_env = {
    WAGATE_ENV                   = "cloud"
    WAGATE_PROJECT_ID            = var.project_id
    WAGATE_REGION                = var.region
    WAGATE_LOG_FORMAT            = "json"
    WAGATE_LOG_LEVEL             = var.log_level
    WAGATE_QUEUE_PREFIX          = local.prefix
    WAGATE_RUNNER_URLS           = join(",", local.runner_urls)
    WAGATE_TASKS_SERVICE_ACCOUNT = google_service_account.tasks_invoker.email
    WAGATE_EGRESS_ALLOW_HOSTS    = join(",", var.egress_allow_hosts)
  }
}
