# The production deployment: two shards, a warm api instance, protected from destroy.
environment         = "prod"
deletion_protection = true
shard_count         = 2
runner_memory       = "2Gi"
api_limits = {
  min_instances   = 1
  max_instances   = 100
  concurrency     = 40
  memory          = "512Mi"
  cpu             = "1"
  timeout_seconds = 30
}
