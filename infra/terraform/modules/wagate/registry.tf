# Artifact Registry: the runner images pushed by Cloud Build (runner:<commit>). The cleanup
# policy keeps the newest versions as rollback targets and drops old untagged layers.

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold only wagate's open code and public dependencies, no data or secrets; Google-managed encryption at rest suffices and a CMEK key would gate every deploy and cold start on KMS.
  project       = var.project_id
  location      = var.region
  repository_id = local.prefix
  description   = "wagate container images"
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.image_versions_kept
    }
  }

  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s" # 30 days
    }
  }

  cleanup_policies {
    id     = "delete-old-tagged"
    action = "DELETE"
    condition {
      tag_state  = "TAGGED"
      older_than = "7776000s" # 90 days; keep-recent wins for the newest versions
    }
  }

  depends_on = [google_project_service.this]
}

locals {
  image_repository = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
