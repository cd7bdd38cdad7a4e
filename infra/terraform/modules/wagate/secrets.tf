# Secret Manager: the containers only. Values are added out of band (docs/deploy.md) with
# `gcloud secrets versions add`, so no secret ever appears in Terraform code, plans or state.
#
#   backup-keys  WAGATE_BACKUP_KEYS  key ring "kid:base64(32 bytes),…": encrypts session
#                backups (runner) and seals tenants' webhook secrets (api seals, sweeper opens)
#   admin-key    WAGATE_ADMIN_KEY    admin API key (api only)
#   alert-webhook-secret  WAGATE_ALERT_WEBHOOK_SECRET  signs alert notices to the operators'
#                webhook (sweeper only); mounted only once alert_webhook_secret_version is set
# WAGATE_INTERNAL_SECRET is local-only: in the cloud internal endpoints take OIDC tokens.

locals {
  secrets = {
    backup_keys = {
      id       = "${local.prefix}-backup-keys"
      env      = "WAGATE_BACKUP_KEYS"
      version  = var.secret_versions.backup_keys
      accessor = ["api", "sweeper", "runner"]
    }
    admin_key = {
      id       = "${local.prefix}-admin-key"
      env      = "WAGATE_ADMIN_KEY"
      version  = var.secret_versions.admin_key
      accessor = ["api"]
    }
    alert_webhook_secret = {
      id       = "${local.prefix}-alert-webhook-secret"
      env      = "WAGATE_ALERT_WEBHOOK_SECRET"
      version  = var.alert_webhook_secret_version
      accessor = ["sweeper"]
    }
  }

  secret_accessors = merge([
    for name, secret in local.secrets : {
      for component in secret.accessor : "${name}/${component}" => { secret = name, component = component }
    }
  ]...)
}

resource "google_secret_manager_secret" "this" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = each.value.id
  labels    = local.labels

  replication {
    auto {}
  }

  deletion_protection = var.deletion_protection

  depends_on = [google_project_service.this]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_accessors

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.component_sa_emails[each.value.component]}"
}
