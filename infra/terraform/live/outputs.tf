# What Cloud Build's smoke test and operators need; never secret values.

output "api_url" {
  description = "Public base URL of the api (smoke test: GET <api_url>/v1/health)."
  value       = module.wagate.api_url
}

output "runner_urls" {
  description = "Runner base URLs in shard order."
  value       = module.wagate.runner_urls
}

output "queue_names" {
  description = "Every Cloud Tasks queue of the deployment."
  value       = module.wagate.queue_names
}

output "image_repository" {
  description = "Artifact Registry path the runner image is pushed to."
  value       = module.wagate.image_repository
}

output "secret_ids" {
  description = "Secrets to fill out of band before the first full apply."
  value       = module.wagate.secret_ids
}

output "backup_bucket" {
  description = "Bucket of the encrypted session backups."
  value       = module.wagate.backup_bucket
}
