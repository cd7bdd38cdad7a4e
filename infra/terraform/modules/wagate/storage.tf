# Cloud Storage: the session-backup bucket (AES-256-GCM ciphertext written by the runners with
# generation preconditions; versioning keeps history the restore falls back to) and the media
# bucket (uploads of up to 16 MB, written by the api).
# Object access is recorded by Data Access audit logs (iam.tf), not legacy usage logs.

data "google_storage_project_service_account" "this" {
  project = var.project_id
}

# The Cloud Storage service agent must be able to use the CMEK key before the bucket names it.
resource "google_kms_crypto_key_iam_member" "backup_cmek" {
  count = var.backup_kms_key_name == null ? 0 : 1

  crypto_key_id = var.backup_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.this.email_address}"
}

resource "google_storage_bucket" "backups" {
  #checkov:skip=CKV_GCP_62:Object reads and writes are audited by Data Access audit logs (google_project_iam_audit_config.storage), which supersede legacy usage logs and need no second bucket.
  project  = var.project_id
  name     = local.backup_bucket_name
  location = local.bucket_location
  labels   = local.labels

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  # Keep the newest N superseded versions of each backup …
  lifecycle_rule {
    condition {
      with_state         = "ARCHIVED"
      num_newer_versions = var.backup_noncurrent_versions_kept + 1
    }
    action {
      type = "Delete"
    }
  }

  # … and none older than the age limit, whatever its rank.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.backup_noncurrent_max_age_days
    }
    action {
      type = "Delete"
    }
  }

  soft_delete_policy {
    retention_duration_seconds = 7 * 24 * 3600 # an accidental delete stays recoverable for a week
  }

  dynamic "encryption" {
    for_each = var.backup_kms_key_name == null ? [] : [var.backup_kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.this, google_kms_crypto_key_iam_member.backup_cmek]
}

resource "google_storage_bucket" "media" {
  #checkov:skip=CKV_GCP_62:Object reads and writes are audited by Data Access audit logs (google_project_iam_audit_config.storage), which supersede legacy usage logs and need no second bucket.
  project  = var.project_id
  name     = local.media_bucket_name
  location = local.bucket_location
  labels   = local.labels

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  # Uploads are written once; versioning only guards against an accidental overwrite.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.media_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}
