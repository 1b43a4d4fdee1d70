# The training job: a Cloud Run Job running training/Dockerfile's image from
# Artifact Registry. It reads the data set from the training-data bucket and
# publishes a new model version to the models bucket (the publish step moves
# models/current.json only when the model passes its gate).

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Holds the trainer and function images only (public code and base images); Google-managed encryption is enough
  project       = var.project_id
  location      = var.region
  repository_id = var.name_prefix
  description   = "Container images of the fashion sorter: the trainer and the functions' builds."
  format        = "DOCKER"
  labels        = local.labels

  # Cleanup deletes what a DELETE policy matches unless a KEEP policy keeps
  # it (Artifact Registry's cleanup policies): versions older than 30 days
  # go, but the 10 most recent of each image (trainer, each function) stay.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${30 * 24 * 3600}s"
    }
  }

  depends_on = [time_sleep.apis_ready]
}

locals {
  # Memory a Cloud Run job may have at each vCPU count (Cloud Run's "Required
  # memory when setting a CPU value", cloud.google.com/run/docs/configuring/jobs/memory-limits).
  training_memory_limits_gib = {
    "1" = { min = 0.5, max = 4 }
    "2" = { min = 0.5, max = 8 }
    "4" = { min = 2, max = 16 }
    "6" = { min = 4, max = 24 }
    "8" = { min = 4, max = 32 }
  }
  training_memory_gib = tonumber(trimsuffix(var.training_memory, "Gi"))
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
      service_account = google_service_account.accounts["training"].email
      timeout         = "7200s"
      max_retries     = 0

      containers {
        image = local.trainer_image
        args = concat(
          [
            "run",
            "--data", "gs://${google_storage_bucket.buckets["training_data"].name}/fashion-product-images-small",
            "--out", "gs://${google_storage_bucket.buckets["models"].name}",
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
    time_sleep.apis_ready,
    google_storage_bucket_iam_member.grants,
  ]

  lifecycle {
    precondition {
      condition = (
        local.training_memory_gib >= local.training_memory_limits_gib[var.training_cpu].min &&
        local.training_memory_gib <= local.training_memory_limits_gib[var.training_cpu].max
      )
      error_message = "training_memory must fit training_cpu as Cloud Run requires: 1 vCPU 0.5-4 GiB, 2 vCPU 0.5-8 GiB, 4 vCPU 2-16 GiB, 6 vCPU 4-24 GiB, 8 vCPU 4-32 GiB."
    }
  }
}
