# Monitoring: log-based metrics over the components' structured JSON logs, and one alert policy
# per alert kind of SPEC §7. Each policy has the best signal available today (a log line the
# code emits, or a built-in Cloud Run / Firestore / Cloud Tasks metric) and, OR-ed with it, the
# wagate health alert of the same kind (metric `health_alerts`, labels kind and severity), which
# counts log lines `{"message": "health alert raised", "kind": …, "alert_severity": …}` written
# by wagate/services/alerts.py — see docs/operations.md for every kind, threshold and cooldown.

locals {
  runner_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${local.prefix}-runner-s[0-9]+$\""
  wagate_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^${local.prefix}-(runner-s[0-9]+|api|sweeper)$\""

  log_metrics = {
    health_alerts = {
      description = "wagate health alerts raised (one log line per raise), by kind and severity"
      filter      = "${local.wagate_logs} AND jsonPayload.message=\"health alert raised\""
      labels = {
        kind     = "EXTRACT(jsonPayload.kind)"
        severity = "EXTRACT(jsonPayload.alert_severity)"
      }
    }
    lease_lost = {
      description = "A runner lost its shard lease"
      filter      = "${local.runner_logs} AND jsonPayload.message=\"lease lost\""
      labels      = { service = "EXTRACT(resource.labels.service_name)" }
    }
    session_disconnects = {
      description = "WhatsApp socket disconnects seen by the runners, by reconnect policy"
      filter      = "${local.runner_logs} AND jsonPayload.message=\"disconnected\""
      labels      = { policy = "EXTRACT(jsonPayload.policy)" }
    }
    backup_failures = {
      description = "Session backup uploads that failed"
      filter      = "${local.runner_logs} AND jsonPayload.message=\"backup failed\""
      labels      = {}
    }
    store_unreachable = {
      description = "Firestore outages seen by a runner (logged once, when its lease renewal first fails)"
      filter      = "${local.runner_logs} AND jsonPayload.message=\"lease renewal failed: store unreachable; serving on\""
      labels      = {}
    }
  }

  # Conditions fire when the aligned, reduced value exceeds the threshold: counts of a
  # log-based metric are summed over the window (threshold 0 = any occurrence), percentiles and
  # gauges take the worst series.
  alert_policies = {
    session_failed = {
      display  = "session failed"
      severity = "CRITICAL"
      conditions = [
        { name = "number banned (disconnect policy banned)", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/session_disconnects\" AND metric.label.policy=\"banned\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
        { name = "health alert session_failed / session_failing / session_logged_out", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=one_of(\"session_failed\", \"session_failing\", \"session_logged_out\")", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    reconnect_storm = {
      display  = "reconnect storm"
      severity = "ERROR"
      conditions = [
        { name = "disconnects over threshold in 5 min", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/session_disconnects\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = var.alert_thresholds.reconnects_per_5m, reducer = "REDUCE_SUM", group_by = [] },
        { name = "health alert reconnect_storm", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=\"reconnect_storm\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    backup_failing = {
      display  = "backup failing"
      severity = "CRITICAL"
      conditions = [
        { name = "backup uploads failing", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/backup_failures\"", aligner = "ALIGN_SUM", period = 900, duration = 0, threshold = var.alert_thresholds.backup_failures_per_15m, reducer = "REDUCE_SUM", group_by = [] },
        { name = "health alert backup_failing / backup_corrupt / backup_conflict", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=one_of(\"backup_failing\", \"backup_corrupt\", \"backup_conflict\")", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    dead_letters_growing = {
      display  = "dead letters growing"
      severity = "ERROR"
      conditions = [
        { name = "health alert dead_letters_growing", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=\"dead_letters_growing\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    store_latency = {
      display  = "store latency"
      severity = "WARNING"
      conditions = [
        { name = "Firestore API p99 latency over threshold", filter = "metric.type=\"serviceruntime.googleapis.com/api/request_latencies\" AND resource.type=\"consumed_api\" AND resource.label.service=\"firestore.googleapis.com\"", aligner = "ALIGN_PERCENTILE_99", period = 300, duration = 600, threshold = var.alert_thresholds.store_latency_p99_seconds, reducer = "REDUCE_MAX", group_by = [] },
        { name = "runners cannot reach Firestore", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/store_unreachable\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
        { name = "health alert store_latency", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=\"store_latency\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    memory_growth = {
      display  = "memory growth"
      severity = "WARNING"
      conditions = [
        { name = "runner memory utilization high", filter = "metric.type=\"run.googleapis.com/container/memory/utilizations\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=starts_with(\"${local.prefix}-runner-s\")", aligner = "ALIGN_PERCENTILE_99", period = 300, duration = 900, threshold = var.alert_thresholds.memory_utilization, reducer = "REDUCE_MAX", group_by = ["resource.label.service_name"] },
        { name = "health alert memory_growth", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=\"memory_growth\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    lease_lost = {
      display  = "lease lost"
      severity = "CRITICAL"
      conditions = [
        { name = "runner lost its shard lease", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/lease_lost\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
        { name = "health alert lease_lost", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=\"lease_lost\"", aligner = "ALIGN_SUM", period = 300, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    expired_keys = {
      display  = "expired key material backlog"
      severity = "WARNING"
      conditions = [
        { name = "health alert expired_keys (maintenance)", filter = "metric.type=\"logging.googleapis.com/user/${local.prefix}/health_alerts\" AND metric.label.kind=\"expired_keys\"", aligner = "ALIGN_SUM", period = 3600, duration = 0, threshold = 0, reducer = "REDUCE_SUM", group_by = [] },
      ]
    }
    send_backlog = {
      display  = "send backlog growing"
      severity = "WARNING"
      conditions = [
        { name = "send queue depth over threshold", filter = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" AND resource.type=\"cloud_tasks_queue\" AND resource.label.queue_id=monitoring.regex.full_match(\"${local.prefix}-s[0-9]+-(high|normal|bulk)\")", aligner = "ALIGN_MEAN", period = 300, duration = 900, threshold = var.alert_thresholds.send_queue_depth, reducer = "REDUCE_MAX", group_by = ["resource.label.queue_id"] },
      ]
    }
  }
}

resource "google_logging_metric" "this" {
  for_each = local.log_metrics

  project     = var.project_id
  name        = "${local.prefix}/${each.key}"
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "wagate ${replace(each.key, "_", " ")}"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = "extracted by ${labels.value}"
      }
    }
  }

  label_extractors = each.value.labels

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "this" {
  for_each = local.alert_policies

  project               = var.project_id
  display_name          = "wagate ${var.environment}: ${each.value.display}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels
  user_labels           = local.labels

  dynamic "conditions" {
    for_each = each.value.conditions
    content {
      display_name = conditions.value.name

      condition_threshold {
        filter                  = conditions.value.filter
        comparison              = "COMPARISON_GT"
        threshold_value         = conditions.value.threshold
        duration                = "${conditions.value.duration}s"
        evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

        aggregations {
          alignment_period     = "${conditions.value.period}s"
          per_series_aligner   = conditions.value.aligner
          cross_series_reducer = conditions.value.reducer
          group_by_fields      = conditions.value.group_by
        }

        trigger {
          count = 1
        }
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "wagate ${var.environment}: ${each.value.display}"
    content   = "wagate raised **${each.value.display}** in ${var.project_id}. Open alerts and recovery actions: `wagate health --verbose` (collections `health_alerts`, `recovery_actions`). Runbook: docs/deploy.md, \"Alerts\"."
  }

  depends_on = [google_logging_metric.this]
}
