# Inputs of a deployment; envs/<env>.tfvars sets what differs between environments, Cloud Build
# sets project_id, runner_image_tag and functions_source_dir, the rest keep these defaults.

variable "environment" {
  type        = string
  description = "Name of the deployment: dev or prod (labels, names, alert texts)."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the database and buckets (true in prod)."
}

variable "project_id" {
  type        = string
  description = "Google Cloud project of the deployment."
}

variable "region" {
  type        = string
  description = "Region of every regional resource."
  default     = "us-central1"
}

variable "shard_count" {
  type        = number
  description = "Runner shards (one Cloud Run service each). Only ever grow it: sessions are pinned to their shard."

  validation {
    condition     = var.shard_count >= 1 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a positive integer."
  }
}

variable "runner_image_tag" {
  type        = string
  description = "Tag of the runner image in Artifact Registry; Cloud Build uses the commit SHA. Roll back by applying an older tag."

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.runner_image_tag)) && var.runner_image_tag != "latest"
    error_message = "runner_image_tag must be a valid image tag other than latest."
  }
}

variable "runner_cpu" {
  type        = string
  description = "vCPUs of each runner instance."
  default     = "1"
}

variable "runner_memory" {
  type        = string
  description = "Memory of each runner instance."
}

variable "engine" {
  type        = string
  description = "WhatsApp engine of the runners: baileys (real network, the default), whatsmeow (real network) or simulator (needs simulator_url)."
  default     = "baileys"
}

variable "simulator_url" {
  type        = string
  description = "Base URL of a deployed WhatsApp simulator when engine = simulator."
  default     = null
}

variable "functions_source_dir" {
  type        = string
  description = "Directory staged by infra/terraform/scripts/stage_functions.py."
  default     = "../../../build/functions-src"
}

variable "api_limits" {
  type = object({
    min_instances   = number
    max_instances   = number
    concurrency     = number
    memory          = string
    cpu             = string
    timeout_seconds = number
  })
  description = "Scaling and size of the api function."
}

variable "secret_versions" {
  type = object({
    backup_keys = string
    admin_key   = string
  })
  description = "Secret Manager versions read by the components. Pin a number to roll a rotated key out with a deploy (docs/deploy.md, Rotating keys)."
  default = {
    backup_keys = "latest"
    admin_key   = "latest"
  }
}

variable "notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/N) for every alert."
  default     = []
}

variable "alert_webhook_url" {
  type        = string
  description = "Operators' HTTPS webhook for alert opened/resolved notices (docs/operations.md); null sends none."
  default     = null
}

variable "alert_webhook_secret_version" {
  type        = string
  description = "Version of the alert-webhook-secret secret that signs alert notices; null until one is added."
  default     = null
}

variable "egress_allow_hosts" {
  type        = list(string)
  description = "Exact host:port exceptions to the egress guard (docs/security.md), e.g. an on-premises webhook receiver."
  default     = []
}
