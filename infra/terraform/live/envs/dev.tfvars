# The development deployment: one small shard, scales to zero, can be destroyed.
environment         = "dev"
deletion_protection = false
shard_count         = 1
runner_memory       = "1Gi"
api_limits = {
  min_instances   = 0
  max_instances   = 10
  concurrency     = 40
  memory          = "512Mi"
  cpu             = "1"
  timeout_seconds = 30
}
