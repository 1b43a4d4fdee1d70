# APIs, buckets and the Firestore database.

locals {
  labels = merge(var.labels, { app = "fashion-sorter" })

  default_bucket_names = {
    incoming      = "${var.name_prefix}-${var.project_id}-incoming"
    processed     = "${var.name_prefix}-${var.project_id}-processed"
    models        = "${var.name_prefix}-${var.project_id}-models"
    training_data = "${var.name_prefix}-${var.project_id}-training-data"
    dataflow      = "${var.name_prefix}-${var.project_id}-dataflow"
  }
  bucket_names = merge(local.default_bucket_names, var.bucket_names)

  trainer_image = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/trainer:${var.training_image_tag}"

  # cloudresourcemanager, serviceusage and iam are also enabled before the
  # first apply (cloudbuild.yaml's `enable-apis` step, docs/deploy.md): the
  # provider needs the first two to enable anything else, and listing them
  # here keeps them on.
  services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "dataflow.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ]

  # Objects under these prefixes are deleted after so many days (0 keeps
  # them), in the buckets that hold them.
  prefix_retention_days = {
    "rejected/" = var.rejected_retention_days
    "reports/"  = var.reports_retention_days
  }
  expiring_prefixes = {
    processed = ["rejected/", "reports/"]
    models    = ["reports/"]
  }
  expiry_rules = {
    for bucket, prefixes in local.expiring_prefixes :
    bucket => { for prefix in prefixes : prefix => local.prefix_retention_days[prefix] if local.prefix_retention_days[prefix] > 0 }
  }
}

# Needs the Cloud Resource Manager API, a prerequisite (docs/deploy.md).
data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "services" {
  for_each = toset(local.services)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# An enabled API takes a while before every Google front end accepts calls
# to it ("If you've enabled this API recently, wait a few minutes": the 403
# Google returns meanwhile). Everything that calls an API of local.services
# depends on this wait, not on the enablement itself.
resource "time_sleep" "apis_ready" {
  create_duration = "60s"
  triggers        = {
    services = join(",", sort([for s in google_project_service.services : s.service]))
  }
}

# --------------------------------------------------------------------------
# Buckets. Uniform bucket-level access and public access prevention on all;
# versioning on the models bucket (rolling back a model = moving a pointer,
# and a deleted pointer can be restored).

resource "google_storage_bucket" "incoming" {
  #checkov:skip=CKV_GCP_62:Access logs of a transient upload bucket would duplicate the Firestore record kept for every object
  #checkov:skip=CKV_GCP_78:Objects live here for seconds (classify moves them out); versioning would keep every deleted upload
  name                        = local.bucket_names.incoming
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  # Safety net: anything left here a week (the sweep failed for days) is
  # kept, but moved to a cheaper class.
  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_storage_bucket" "processed" {
  #checkov:skip=CKV_GCP_62:Every object here has its Firestore record (who, when, what); bucket access logs would duplicate it
  name                        = local.bucket_names.processed
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  # A re-upload of a name replaces its copy (the newest upload owns the
  # name); the older copy stays as a noncurrent version for
  # processed_noncurrent_days (README, "The event pipeline").
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.processed_noncurrent_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = local.expiry_rules.processed
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = [lifecycle_rule.key]
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:Written only by the training job and Cloud Build; Cloud Audit Logs (data access) cover it when needed
  name                        = local.bucket_names.models
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      # "at least N versions (including the live version) newer than this
      # one" (Cloud Storage's lifecycle conditions): N = kept + 1 keeps
      # exactly model_noncurrent_versions noncurrent versions.
      num_newer_versions = var.model_noncurrent_versions + 1
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = local.expiry_rules.models
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = [lifecycle_rule.key]
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_storage_bucket" "training_data" {
  #checkov:skip=CKV_GCP_62:Read only by the training job; Cloud Audit Logs (data access) cover it when needed
  #checkov:skip=CKV_GCP_78:The data set is uploaded once and replaced as a whole; its fingerprint is recorded in every model manifest
  name                        = local.bucket_names.training_data
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  depends_on = [time_sleep.apis_ready]
}

# --------------------------------------------------------------------------
# Firestore (Native mode): classifications/<id>, stats/<day>/shards/<n>,
# sweep runs. Single-field queries (created_at) use the automatic indexes; the
# composite index serves "records in a status, oldest first" (stuck
# `processing` leases found by the sweep, the review queue).

resource "google_firestore_database" "main" {
  project                 = var.project_id
  name                    = var.firestore_database
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  concurrency_mode        = "PESSIMISTIC"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [time_sleep.apis_ready]
}

resource "google_firestore_index" "classifications_status_created" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "classifications"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "ASCENDING"
  }
}
