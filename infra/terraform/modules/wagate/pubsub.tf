# Pub/Sub: the topic tenants' events are published to besides (or instead of) their webhooks
# (docs/events.md, "Pub/Sub"). The runners publish (each session's events, in order, with the
# chat as ordering key); an admin points a tenant at a topic (PUT /v1/admin/tenants/{id}/pubsub).
# Extra topics (one per tenant, say) come from var.pubsub_topics; the runners may publish to
# these only. Subscriptions belong to the consumers and are not made here.

resource "google_pubsub_topic" "events" {
  for_each = toset(concat(["${local.prefix}-events"], var.pubsub_topics))

  project = var.project_id
  name    = each.key
  #checkov:skip=CKV_GCP_83:Events carry what the tenant's webhook gets (already leaving the platform to the tenant); Google-managed encryption at rest suffices, and a CMEK key would gate every publish on KMS.
  message_retention_duration = "86400s" # a consumer that was down a day can still seek back

  depends_on = [google_project_service.this]
}

resource "google_pubsub_topic_iam_member" "runner_publishes" {
  for_each = google_pubsub_topic.events

  project = var.project_id
  topic   = each.value.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.runner.email}"
}
