# The training job: a Cloud Run Job running training/Dockerfile's image from
# Artifact Registry. It reads the data set from the training-data bucket and
# publishes a new model version to the models bucket (the publish step moves
# models/current.json only when the model passes its gate).

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Holds the trainer image only (public code and base image); Google-managed encryption is enough
  project       = var.project_id
  location      = var.region
  repository_id = var.name_prefix
  description   = "Container images of the fashion sorter (the trainer)."
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_project_service.services]
}

resource "google_cloud_run_v2_job" "training" {
  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-training"
  labels              = local.labels
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.training.email
      timeout         = "7200s"
      max_retries     = 0

      containers {
        image = local.trainer_image
        args = concat(
          [
            "run",
            "--data", "gs://${google_storage_bucket.training_data.name}/fashion-product-images-small",
            "--out", "gs://${google_storage_bucket.models.name}",
            "--work-dir", "/tmp/train-work",
          ],
          var.training_args,
        )

        resources {
          limits = {
            cpu    = var.training_cpu
            memory = var.training_memory
          }
        }
      }
    }
  }

  depends_on = [
    google_project_service.services,
    google_storage_bucket_iam_member.training_data,
    google_storage_bucket_iam_member.training_models,
  ]
}
