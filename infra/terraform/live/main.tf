# The one root of every deployment of wagate: envs/<env>.tfvars gives an environment its sizes
# and envs/<env>.backend.hcl its state (docs/deploy.md).

locals {
  name_prefix = "wagate"
  # The module creates the repository; Cloud Build pushes runner:<tag> into it before apply.
  runner_image = "${var.region}-docker.pkg.dev/${var.project_id}/${local.name_prefix}/runner:${var.runner_image_tag}"
}

module "wagate" {
  source = "../modules/wagate"

  project_id  = var.project_id
  region      = var.region
  environment = var.environment
  name_prefix = local.name_prefix

  shard_count          = var.shard_count
  runner_image         = local.runner_image
  runner_cpu           = var.runner_cpu
  runner_memory        = var.runner_memory
  engine               = var.engine
  simulator_url        = var.simulator_url
  functions_source_dir = var.functions_source_dir
  api_limits           = var.api_limits
  secret_versions      = var.secret_versions

  notification_channels        = var.notification_channels
  alert_webhook_url            = var.alert_webhook_url
  alert_webhook_secret_version = var.alert_webhook_secret_version
  egress_allow_hosts           = var.egress_allow_hosts
  deletion_protection          = var.deletion_protection
}
