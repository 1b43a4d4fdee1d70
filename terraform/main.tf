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
  triggers = {
    services = join(",", sort([for s in google_project_service.services : s.service]))
  }
}

# --------------------------------------------------------------------------
# Buckets: one resource over bucket_names, what differs between them in
# bucket_settings. Uniform bucket-level access and public access prevention
# on all; versioning on the processed bucket (a re-upload's older copy is
# kept a while) and the models bucket (rolling back a model = moving a
# pointer, and a deleted pointer can be restored).

locals {
  # Per bucket: versioned, and its lifecycle rules ({condition, action} as
  # the provider's blocks take them; what a rule leaves out is unset),
  # before the expiring prefixes of expiry_rules.
  bucket_settings = {
    # Objects live here for seconds (classify moves them out). Safety net:
    # anything left here a week (the sweep failed for days) is kept, but
    # moved to a cheaper class.
    incoming = {
      versioned = false
      rules     = [{ condition = { age = 7 }, action = { type = "SetStorageClass", storage_class = "NEARLINE" } }]
    }
    # A re-upload of a name replaces its copy (the newest upload owns the
    # name); the older copy stays as a noncurrent version for
    # processed_noncurrent_days (README, "The event pipeline").
    processed = {
      versioned = true
      rules = [{
        condition = { days_since_noncurrent_time = var.processed_noncurrent_days, with_state = "ARCHIVED" }
        action    = { type = "Delete" }
      }]
    }
    # "at least N versions (including the live version) newer than this
    # one" (Cloud Storage's lifecycle conditions): N = kept + 1 keeps
    # exactly model_noncurrent_versions noncurrent versions.
    models = {
      versioned = true
      rules = [{
        condition = { num_newer_versions = var.model_noncurrent_versions + 1, with_state = "ARCHIVED" }
        action    = { type = "Delete" }
      }]
    }
    training_data = {
      versioned = false
      rules     = []
    }
    # The backfill's Dataflow bucket (backfill.tf): the Flex Template spec,
    # and Dataflow's staging and temp files, deleted after a week.
    dataflow = {
      versioned = false
      rules     = [{ condition = { age = 7, matches_prefix = ["temp/", "staging/"] }, action = { type = "Delete" } }]
    }
  }
}

resource "google_storage_bucket" "buckets" {
  for_each = local.bucket_names
  #checkov:skip=CKV_GCP_62:Access logs would duplicate what is recorded already: every processed object has its Firestore record, uploads live in incoming for seconds, the models, training data and Dataflow buckets are written only by the training job, Cloud Build and Dataflow (Cloud Audit Logs, data access, cover them when needed)
  #checkov:skip=CKV_GCP_78:Versioned where a noncurrent version is worth keeping (processed, models: local.bucket_settings); incoming keeps uploads for seconds, the training data is replaced as a whole (its fingerprint is in every manifest), Dataflow's files are rewritten by every job

  name                        = each.value
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  dynamic "versioning" {
    for_each = local.bucket_settings[each.key].versioned ? [true] : []
    content {
      enabled = versioning.value
    }
  }

  dynamic "lifecycle_rule" {
    for_each = concat(local.bucket_settings[each.key].rules, [
      for prefix, days in lookup(local.expiry_rules, each.key, {}) :
      { condition = { age = days, matches_prefix = [prefix] }, action = { type = "Delete" } }
    ])
    content {
      condition {
        age                        = try(lifecycle_rule.value.condition.age, null)
        matches_prefix             = try(lifecycle_rule.value.condition.matches_prefix, null)
        days_since_noncurrent_time = try(lifecycle_rule.value.condition.days_since_noncurrent_time, null)
        num_newer_versions         = try(lifecycle_rule.value.condition.num_newer_versions, null)
        with_state                 = try(lifecycle_rule.value.condition.with_state, null)
      }
      action {
        type          = lifecycle_rule.value.action.type
        storage_class = try(lifecycle_rule.value.action.storage_class, null)
      }
    }
  }

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
