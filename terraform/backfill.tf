# The back-catalogue backfill (backfill/, docs/backfill.md): the Firestore
# index exemptions that lift write limits at scale. Its Dataflow bucket (the
# Flex Template spec, staging and temp files) is main.tf's
# google_storage_bucket.buckets["dataflow"].
#
# The Dataflow job itself is NOT a Terraform resource: a batch job is run
# (fashionctl backfill --runner dataflow, or gcloud dataflow flex-template
# run), and a google_dataflow_flex_template_job here would be launched again
# by an apply after the job finished (a finished batch job reads as gone).

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
