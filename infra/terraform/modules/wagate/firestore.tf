# Firestore (native mode): the (default) database the code opens, the composite indexes of the
# queries it runs, single-field index exemptions for large unqueried fields, and TTL policies.
#
# Queries (grep `Where(` in wagate/ and runner/) and the index each needs:
#   sweeper        messages  status IN [...] AND updated_at < t                 → (status, updated_at)
#   list messages  messages  session_id == s ORDER BY created_at DESC           → (session_id, created_at DESC)
#   chat ordering  messages  session_id == s AND to == r AND status IN [...]
#                            AND created_at < t                                  → (session_id, to, status, created_at)
#   retry-dead     messages  tenant_id == t AND status == "dead"              → (tenant_id, status)
#                            … AND session_id == s                              → (tenant_id, status, session_id)
#   receipts       messages  session_id == s AND wa_id == w                     → (session_id, wa_id)
#   takeover nudge messages  shard == n AND status IN [...]                     → (shard, status)
#   list sessions  sessions  tenant_id == t ORDER BY created_at                 → (tenant_id, created_at)
#   deliveries     webhook_deliveries tenant_id == t [AND session_id == s] [AND state == x]
#                            ORDER BY created_at DESC                           → one index per filter set
#   event stream   events    tenant_id == t [AND session_id == s] AND seq > c AND seq < n
#                            ORDER BY seq                                       → (tenant_id, [session_id,] seq)
#   mark read      inbound   chat == c ORDER BY ts DESC                         → (chat, ts DESC)
# Single-field queries (sessions by shard, tenants/health_alerts by one field, inbound by ts)
# use the automatic single-field indexes. Equality-only queries could be served by merging
# single-field indexes, but composite ones keep them cheap and predictable at volume.

resource "google_firestore_database" "this" {
  project     = var.project_id
  name        = "(default)" # wagate.adapters.firestore opens the default database
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"

  concurrency_mode                  = "PESSIMISTIC" # transactions lock what they read (leases, claims)
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.this]
}

locals {
  # Composite indexes: name => collection + ordered fields ("field" or "field:DESCENDING").
  firestore_indexes = {
    messages-status-updated         = { collection = "messages", fields = ["status", "updated_at"] }
    messages-session-created-desc   = { collection = "messages", fields = ["session_id", "created_at:DESCENDING"] }
    messages-tenant-status          = { collection = "messages", fields = ["tenant_id", "status"] }
    messages-tenant-status-session  = { collection = "messages", fields = ["tenant_id", "status", "session_id"] }
    messages-session-waid           = { collection = "messages", fields = ["session_id", "wa_id"] }
    pending-chat-created            = { collection = "pending", fields = ["chat", "created_at"] }
    sessions-tenant-created         = { collection = "sessions", fields = ["tenant_id", "created_at"] }
    deliveries-tenant               = { collection = "webhook_deliveries", fields = ["tenant_id", "created_at:DESCENDING"] }
    deliveries-tenant-session       = { collection = "webhook_deliveries", fields = ["tenant_id", "session_id", "created_at:DESCENDING"] }
    deliveries-tenant-state         = { collection = "webhook_deliveries", fields = ["tenant_id", "state", "created_at:DESCENDING"] }
    deliveries-tenant-session-state = { collection = "webhook_deliveries", fields = ["tenant_id", "session_id", "state", "created_at:DESCENDING"] }
    events-tenant-seq               = { collection = "events", fields = ["tenant_id", "seq"] }
    events-tenant-session-seq       = { collection = "events", fields = ["tenant_id", "session_id", "seq"] }
    inbound-chat-ts-desc            = { collection = "inbound", fields = ["chat", "ts:DESCENDING"] }
  }

  # Large or unqueried fields: no single-field indexes (cheaper writes, no index-entry limits).
  firestore_unindexed_fields = {
    messages-content      = { collection = "messages", field = "content" }
    messages-errors       = { collection = "messages", field = "errors" }
    messages-status-times = { collection = "messages", field = "status_times" }
    inbound-content       = { collection = "inbound", field = "content" }
    deliveries-event      = { collection = "webhook_deliveries", field = "event" }
    events-event          = { collection = "events", field = "event" }
  }

  # TTL: Firestore deletes a document once the timestamp in this field is in the past, so the
  # field must hold an *expiry* time (created_at + retention), never the creation time itself.
  # The code does not write expire_at yet (see docs/deploy.md); until it does the policies
  # delete nothing, which is the safe direction.
  firestore_ttl_fields = {
    idempotency      = { collection = "idempotency", field = "expire_at" }
    inbound          = { collection = "inbound", field = "expire_at" }
    recovery_actions = { collection = "recovery_actions", field = "expire_at" }
    rate_limits      = { collection = "rate_limits", field = "expire_at" }        # window end + 1 h
    pending          = { collection = "pending", field = "expire_at" }            # due + 35 days
    deliveries       = { collection = "webhook_deliveries", field = "expire_at" } # last attempt + 14 days
    events           = { collection = "events", field = "expire_at" }             # logged + 24 h (stream)
    contacts         = { collection = "contacts", field = "expire_at" }           # checked + 24 h
    group_creates    = { collection = "group_creates", field = "expire_at" }      # created + 24 h
  }
}

resource "google_firestore_index" "this" {
  for_each = local.firestore_indexes

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = each.value.collection
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = split(":", fields.value)[0]
      order      = length(split(":", fields.value)) > 1 ? split(":", fields.value)[1] : "ASCENDING"
    }
  }
}

resource "google_firestore_field" "unindexed" {
  for_each = local.firestore_unindexed_fields

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.collection
  field      = each.value.field

  index_config {} # empty: every single-field index of this field is disabled
}

resource "google_firestore_field" "ttl" {
  for_each = local.firestore_ttl_fields

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.collection
  field      = each.value.field

  ttl_config {}
  index_config {} # a monotonically growing timestamp index is a write hot spot, and unqueried
}
