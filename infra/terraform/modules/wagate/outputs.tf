# Outputs: URLs and names for Cloud Build, the smoke test and operators. No secret values:
# only the names of the Secret Manager secrets the operator fills out of band.

output "api_url" {
  description = "Public base URL of the api function; the API lives under /v1 (health: /v1/health)."
  value       = local.api_url
}

output "sweeper_url" {
  description = "Base URL of the sweeper function (internal ingress only)."
  value       = local.sweeper_url
}

output "runner_urls" {
  description = "Base URLs of the runners, in shard order (WAGATE_RUNNER_URLS)."
  value       = local.runner_urls
}

output "queue_names" {
  description = "Every Cloud Tasks queue: <prefix>-s<n>-high|normal|bulk|control and <prefix>-webhooks."
  value       = sort(keys(google_cloud_tasks_queue.this))
}

output "queue_prefix" {
  description = "WAGATE_QUEUE_PREFIX of this deployment."
  value       = local.prefix
}

output "backup_bucket" {
  description = "Bucket of the encrypted session backups."
  value       = google_storage_bucket.backups.name
}

output "media_bucket" {
  description = "Bucket of uploaded media."
  value       = google_storage_bucket.media.name
}

output "image_repository" {
  description = "Artifact Registry path to push images to (REGION-docker.pkg.dev/PROJECT/REPO)."
  value       = local.image_repository
}

output "secret_ids" {
  description = "Secret Manager secrets whose values are added out of band (gcloud secrets versions add)."
  value       = { for name, secret in google_secret_manager_secret.this : name => secret.secret_id }
}

output "service_accounts" {
  description = "Service account email of each component."
  value = {
    api           = google_service_account.api.email
    sweeper       = google_service_account.sweeper.email
    runner        = google_service_account.runner.email
    tasks_invoker = google_service_account.tasks_invoker.email
  }
}

output "events_topics" {
  description = "Pub/Sub topics the runners publish tenants' events to (projects/…/topics/…)"
  value       = [for t in google_pubsub_topic.events : t.id]
}
