# Provider and Terraform versions.
#
# Remote state: keep the state in a versioned Cloud Storage bucket created
# once by hand, not on a laptop. Copy backend.tf.example to backend.tf and
# give the bucket at init time:
#
#   cp backend.tf.example backend.tf
#   terraform init -backend-config="bucket=MY-PROJECT-tfstate" -backend-config="prefix=fashion-sorter"
#
# cloudbuild.yaml does exactly this with the _TF_STATE_BUCKET substitution.
# Without backend.tf the state stays local (fine for a throw-away project).

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
    # time_sleep: waits where Google documents propagation delays (API
    # enablement, IAM grants, new log-based metrics).
    time = {
      source  = "hashicorp/time"
      version = ">= 0.11, < 1.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
