# Inputs of the wagate module. Every knob the code reads from WAGATE_* that differs per
# deployment is a variable here; everything else is derived (see main.tf) so that the
# api, the sweeper and the runners can never disagree about names and URLs.

# ---------------------------------------------------------------- where

variable "project_id" {
  type        = string
  description = "Google Cloud project id that hosts this wagate deployment."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project id (6-30 chars, lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region of the queues, functions, runners and buckets (also WAGATE_REGION)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1 or europe-west1."
  }
}

variable "environment" {
  type        = string
  description = "Deployment stage, used in labels and alert names: dev or prod."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name and of the Cloud Tasks queues (WAGATE_QUEUE_PREFIX)."
  default     = "wagate"

  validation {
    # Service-account ids are at most 30 chars: "<prefix>-tasks-invoker" must fit.
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 chars: lowercase letters, digits, hyphens, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels put on every labelable resource."
  default     = {}
}

# ---------------------------------------------------------------- shards and runners

variable "shard_count" {
  type        = number
  description = "Number of runner shards: one Cloud Run service and four Cloud Tasks queues each (WAGATE_SHARD_COUNT). Only ever grow it: sessions are pinned to their shard."
  default     = 1

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 100 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be an integer between 1 and 100."
  }
}

variable "sessions_per_shard" {
  type        = number
  description = "Sessions one shard's runner is sized for (WAGATE_SESSIONS_PER_SHARD): the api assigns a new session only to a shard below it. Raise it with the runner's memory (docs/sessions.md)."
  default     = 100

  validation {
    condition     = var.sessions_per_shard >= 1 && var.sessions_per_shard <= 100000 && floor(var.sessions_per_shard) == var.sessions_per_shard
    error_message = "sessions_per_shard must be an integer between 1 and 100000."
  }
}

variable "runner_image" {
  type        = string
  description = "Container image of the runner, pinned by tag or digest (never :latest), e.g. REGION-docker.pkg.dev/PROJECT/wagate/runner:abc1234."

  validation {
    condition     = can(regex("^[a-z0-9.-]+(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", var.runner_image)) && !endswith(var.runner_image, ":latest")
    error_message = "runner_image must be a full image reference with an explicit tag (not latest) or a sha256 digest."
  }
}

variable "runner_cpu" {
  type        = string
  description = "vCPUs of each runner instance (always allocated: the runner holds sockets between requests)."
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "8"], var.runner_cpu)
    error_message = "runner_cpu must be 1, 2, 4 or 8."
  }
}

variable "runner_memory" {
  type        = string
  description = "Memory of each runner instance, e.g. 1Gi. Budget about 1 MB per connected session plus headroom."
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.runner_memory))
    error_message = "runner_memory must be a quantity in Mi or Gi, e.g. 512Mi or 2Gi."
  }
}

variable "runner_request_timeout_seconds" {
  type        = number
  description = "Cloud Run request timeout of the runners; must cover the send queues' 60 s dispatch deadline."
  default     = 120

  validation {
    condition     = var.runner_request_timeout_seconds >= 60 && var.runner_request_timeout_seconds <= 3600
    error_message = "runner_request_timeout_seconds must be between 60 and 3600 (send tasks have a 60 s dispatch deadline)."
  }
}

variable "runner_max_concurrency" {
  type        = number
  description = "Concurrent requests per runner instance. The single instance must take every in-flight task of its shard's queues."
  default     = 1000

  validation {
    condition     = var.runner_max_concurrency >= 80 && var.runner_max_concurrency <= 1000
    error_message = "runner_max_concurrency must be between 80 and 1000."
  }
}

variable "engine" {
  type        = string
  description = "WhatsApp engine of the runners (WAGATE_ENGINE): baileys (the real network, many sessions per Node worker), whatsmeow (the real network, one process per session) or simulator (a deployed simulator, for dev only)."
  default     = "baileys"

  validation {
    condition     = contains(["baileys", "whatsmeow", "simulator"], var.engine)
    error_message = "engine must be baileys, whatsmeow or simulator."
  }
}

variable "simulator_url" {
  type        = string
  description = "Base URL of a deployed WhatsApp simulator (WAGATE_SIMULATOR_URL); required when engine = simulator, ignored otherwise."
  default     = null

  validation {
    condition     = var.engine != "simulator" || (var.simulator_url != null && can(regex("^https://", coalesce(var.simulator_url, "-"))))
    error_message = "simulator_url must be an https:// URL when engine = simulator."
  }
}

variable "persistence" {
  type        = string
  description = "Where the runners keep session auth state (WAGATE_PERSISTENCE): cloud (GCS only) or hybrid (in-memory disk + GCS). local is refused: a replaced instance would lose every session."
  default     = "cloud"

  validation {
    condition     = contains(["cloud", "hybrid"], var.persistence)
    error_message = "persistence must be cloud or hybrid on Cloud Run."
  }
}

variable "log_level" {
  type        = string
  description = "Minimum log level of every component (WAGATE_LOG_LEVEL)."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

# ---------------------------------------------------------------- functions

variable "functions_source_dir" {
  type        = string
  description = "Directory staged by infra/terraform/scripts/stage_functions.py (main.py shim, functions/, wagate/, requirements.txt); zipped and uploaded by Terraform."

  validation {
    condition     = length(trimspace(var.functions_source_dir)) > 0
    error_message = "functions_source_dir must not be empty."
  }
}

variable "functions_build_service_account" {
  type        = string
  description = "Optional full resource name (projects/P/serviceAccounts/EMAIL) of the service account Cloud Build uses to build the functions; null uses the project default."
  default     = null

  validation {
    condition     = var.functions_build_service_account == null || can(regex("^projects/[^/]+/serviceAccounts/[^/]+@[^/]+$", coalesce(var.functions_build_service_account, "-")))
    error_message = "functions_build_service_account must be projects/PROJECT/serviceAccounts/EMAIL."
  }
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
  description = "Scaling and size of the api function. timeout_seconds is SPEC §6's 30 s request timeout."
  default = {
    min_instances   = 0
    max_instances   = 50
    concurrency     = 40
    memory          = "512Mi"
    cpu             = "1"
    timeout_seconds = 30
  }

  validation {
    condition = (
      var.api_limits.min_instances >= 0 &&
      var.api_limits.max_instances >= max(1, var.api_limits.min_instances) &&
      var.api_limits.concurrency >= 1 && var.api_limits.concurrency <= 1000 &&
      var.api_limits.timeout_seconds >= 10 && var.api_limits.timeout_seconds <= 3600
    )
    error_message = "api_limits: need 0 <= min_instances <= max_instances, 1 <= concurrency <= 1000, 10 <= timeout_seconds <= 3600."
  }
}

variable "sweeper_limits" {
  type = object({
    max_instances   = number
    concurrency     = number
    memory          = string
    cpu             = string
    timeout_seconds = number
  })
  description = "Scaling and size of the sweeper function (sweeps every minute and delivers signed webhooks)."
  default = {
    max_instances   = 20
    concurrency     = 40
    memory          = "512Mi"
    cpu             = "1"
    timeout_seconds = 300
  }

  validation {
    # The webhook queue's dispatch deadline is 30 s; a sweep may take longer.
    condition     = var.sweeper_limits.timeout_seconds >= 60 && var.sweeper_limits.timeout_seconds <= 3600 && var.sweeper_limits.max_instances >= 1
    error_message = "sweeper_limits: timeout_seconds must be between 60 and 3600 and max_instances >= 1."
  }
}

variable "sweeper_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the sweeper; SPEC §1 says every minute."
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.sweeper_schedule))) == 5
    error_message = "sweeper_schedule must be a 5-field cron expression."
  }
}

variable "maintenance_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the sweeper's /maintenance (retention, key material age, orphan backups)."
  default     = "17 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.maintenance_schedule))) == 5
    error_message = "maintenance_schedule must be a 5-field cron expression."
  }
}

variable "alert_webhook_url" {
  type        = string
  description = "Operators' HTTPS webhook that receives alert opened/resolved notices (signed); null sends none."
  default     = null

  validation {
    condition     = var.alert_webhook_url == null || can(regex("^https://", var.alert_webhook_url))
    error_message = "alert_webhook_url must be an https:// URL."
  }
}

variable "alert_webhook_secret_version" {
  type        = string
  description = "Version of the alert-webhook-secret Secret Manager secret that signs alert notices; null until one is added."
  default     = null

  validation {
    condition     = var.alert_webhook_secret_version == null || can(regex("^(latest|[1-9][0-9]*)$", var.alert_webhook_secret_version))
    error_message = "alert_webhook_secret_version must be latest or a version number."
  }
}

# ---------------------------------------------------------------- data

variable "firestore_location" {
  type        = string
  description = "Firestore location (a region such as us-central1 or a multi-region such as nam5); null means the deployment region. Cannot change after creation."
  default     = null
}

variable "bucket_location" {
  type        = string
  description = "Location of the backup and media buckets; null means the deployment region."
  default     = null
}

variable "backup_bucket_name" {
  type        = string
  description = "Name of the encrypted session-backup bucket (WAGATE_BACKUP_BUCKET); null means <project>-<prefix>-backups."
  default     = null
}

variable "media_bucket_name" {
  type        = string
  description = "Name of the uploaded-media bucket (WAGATE_MEDIA_BUCKET); null means <project>-<prefix>-media."
  default     = null
}

variable "backup_noncurrent_versions_kept" {
  type        = number
  description = "Older versions of each session backup kept besides the live one (the restore falls back to them when the newest fails to authenticate)."
  default     = 10

  validation {
    condition     = var.backup_noncurrent_versions_kept >= 1 && var.backup_noncurrent_versions_kept <= 100
    error_message = "backup_noncurrent_versions_kept must be between 1 and 100."
  }
}

variable "backup_noncurrent_max_age_days" {
  type        = number
  description = "Days a superseded backup version is kept at most, whatever its rank."
  default     = 30

  validation {
    condition     = var.backup_noncurrent_max_age_days >= 1
    error_message = "backup_noncurrent_max_age_days must be at least 1."
  }
}

variable "backup_kms_key_name" {
  type        = string
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) that encrypts the backup bucket at rest (CMEK), on top of wagate's own AES-256-GCM."
  default     = null

  validation {
    condition     = var.backup_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.backup_kms_key_name, "-")))
    error_message = "backup_kms_key_name must be projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "media_retention_days" {
  type        = number
  description = "Days uploaded and received media files are kept before the lifecycle rule deletes them."
  default     = 30

  validation {
    condition     = var.media_retention_days >= 1
    error_message = "media_retention_days must be at least 1."
  }
}

variable "secret_versions" {
  type = object({
    backup_keys = string
    admin_key   = string
  })
  description = "Secret Manager versions the components read: a number pins a version, latest follows rotation on the next instance start."
  default = {
    backup_keys = "latest"
    admin_key   = "latest"
  }

  validation {
    condition     = alltrue([for v in values(var.secret_versions) : can(regex("^(latest|[1-9][0-9]*)$", v))])
    error_message = "secret_versions values must be latest or a version number."
  }
}

# ---------------------------------------------------------------- images

variable "image_versions_kept" {
  type        = number
  description = "Most recent image versions per package kept by the Artifact Registry cleanup policy (rollback targets)."
  default     = 20

  validation {
    condition     = var.image_versions_kept >= 3
    error_message = "image_versions_kept must be at least 3 so that a rollback target exists."
  }
}

# ---------------------------------------------------------------- operations

variable "notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) that receive every alert."
  default     = []
}

variable "alert_thresholds" {
  type = object({
    reconnects_per_5m         = number
    backup_failures_per_15m   = number
    store_latency_p99_seconds = number
    memory_utilization        = number
    send_queue_depth          = number
  })
  description = "Thresholds of the alert policies for SPEC §7's alert kinds (store latency p99 > 500 ms by default)."
  default = {
    reconnects_per_5m         = 50
    backup_failures_per_15m   = 5
    store_latency_p99_seconds = 0.5
    memory_utilization        = 0.85
    send_queue_depth          = 5000
  }

  validation {
    condition = (
      var.alert_thresholds.memory_utilization > 0 && var.alert_thresholds.memory_utilization < 1 &&
      var.alert_thresholds.store_latency_p99_seconds > 0 &&
      var.alert_thresholds.reconnects_per_5m >= 1 && var.alert_thresholds.backup_failures_per_15m >= 1 &&
      var.alert_thresholds.send_queue_depth >= 1
    )
    error_message = "alert_thresholds: memory_utilization is a fraction in (0, 1); the other thresholds must be positive."
  }
}

variable "tasks_log_sampling_ratio" {
  type        = number
  description = "Fraction of Cloud Tasks dispatch attempts written to Cloud Logging (0 = none)."
  default     = 0.1

  validation {
    condition     = var.tasks_log_sampling_ratio >= 0 && var.tasks_log_sampling_ratio <= 1
    error_message = "tasks_log_sampling_ratio must be between 0 and 1."
  }
}

variable "enable_data_access_audit_logs" {
  type        = bool
  description = "Write Data Access audit logs for Cloud Storage and Secret Manager (who read a backup or a key)."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the database, buckets, secrets and runners from terraform destroy."
  default     = true
}

variable "egress_allow_hosts" {
  type        = list(string)
  description = "Exact host:port exceptions to the egress guard's public-address rule (docs/security.md), e.g. an on-premises webhook receiver; https is still required."
  default     = []

  validation {
    condition     = alltrue([for h in var.egress_allow_hosts : can(regex("^[^,\\s]+:[0-9]{1,5}$", h))])
    error_message = "Each egress_allow_hosts entry must be host:port."
  }
}

variable "pubsub_topics" {
  type        = list(string)
  description = "Pub/Sub topics for tenants' events besides <prefix>-events (pubsub.tf); the runners get roles/pubsub.publisher on each."
  default     = []

  validation {
    condition     = alltrue([for t in var.pubsub_topics : can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", t))])
    error_message = "pubsub_topics holds topic names (not paths): a letter, then 2 to 254 of letters, digits and ._~+%-."
  }
}
