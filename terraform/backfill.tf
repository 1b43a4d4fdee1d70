# The back-catalogue backfill (backfill/, docs/backfill.md): its Dataflow
# bucket (the Flex Template spec, staging and temp files) and the Firestore
# index exemptions that lift write limits at scale.
#
# The Dataflow job itself is NOT a Terraform resource: a batch job is run
# (fashionctl backfill --runner dataflow, or gcloud dataflow flex-template
# run), and a google_dataflow_flex_template_job here would be launched again
# by an apply after the job finished (a finished batch job reads as gone).

resource "google_storage_bucket" "dataflow" {
  #checkov:skip=CKV_GCP_62:Holds only the template spec and Dataflow's own staging and temp files
  #checkov:skip=CKV_GCP_78:Staging and temp files are rewritten by every job; the template is rebuilt by Cloud Build
  name                        = local.bucket_names.dataflow
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["temp/", "staging/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis_ready]
}

locals {
  # classifications fields no query reads (the queries: status, created_at,
  # updated_at, and status + created_at, in functions/, fashionctl/,
  # reporting/ and bench/). Their automatic single-field indexes cost an
  # index write each on every record write, and finished_at and lease_until
  # rise monotonically: an indexed one caps the collection at about 500
  # writes a second (Firestore's documented limit for sequential indexed
  # values). Exempting them is the Firestore guide's advice for such fields.
  unqueried_fields = [
    "attempts",
    "decision",
    "error",
    "event_ids",
    "finished_at",
    "lease_owner",
    "lease_until",
    "previous",
    "step",
    "timings_ms",
    "top_k",
  ]
}

resource "google_firestore_field" "unqueried" {
  for_each = toset(local.unqueried_fields)

  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "classifications"
  field      = each.value

  # An empty index_config: no single-field index on this field.
  index_config {}
}
