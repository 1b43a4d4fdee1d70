# Service accounts and their roles: one per function, one for the training
# job, one for Cloud Scheduler. Least privilege: bucket-level grants only on
# the buckets each one touches; tests/deploy checks this table.
#
# | account  | grants                                                                              |
# |----------|-------------------------------------------------------------------------------------|
# | classify | incoming: get/list/delete (custom role); processed: viewer + creator; models: viewer; |
# |          | datastore.user; eventarc.eventReceiver; run.invoker on classify (the trigger's identity) |
# | sweep    | incoming: get/list/delete (custom role); processed: viewer + creator; models: viewer; |
# |          | datastore.user                                                                      |
# | predict  | models: viewer; each predict_allowed_buckets entry: viewer; datastore.viewer (stats) |
# | training | training data: viewer; models: objectUser (writes versions, moves the pointer)      |
# | scheduler| run.invoker on sweep (OIDC identity of the scheduler job)                           |

resource "google_service_account" "classify" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-classify"
  display_name = "Fashion sorter: classify function"
}

resource "google_service_account" "sweep" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-sweep"
  display_name = "Fashion sorter: sweep function"
}

resource "google_service_account" "predict" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-predict"
  display_name = "Fashion sorter: predict function"
}

resource "google_service_account" "training" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-training"
  display_name = "Fashion sorter: training job"
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Fashion sorter: Cloud Scheduler caller of the sweep"
}

# Read and delete uploads, nothing else (no create, no overwrite).
resource "google_project_iam_custom_role" "incoming_consumer" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_incoming_consumer"
  title       = "Fashion sorter incoming consumer"
  description = "Read, list and delete objects of the incoming bucket."
  permissions = [
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
  ]
}

# --------------------------------------------------------------------------
# classify

resource "google_storage_bucket_iam_member" "classify_incoming" {
  bucket = google_storage_bucket.incoming.name
  role   = google_project_iam_custom_role.incoming_consumer.id
  member = "serviceAccount:${google_service_account.classify.email}"
}

resource "google_storage_bucket_iam_member" "classify_processed_viewer" {
  bucket = google_storage_bucket.processed.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.classify.email}"
}

resource "google_storage_bucket_iam_member" "classify_processed_creator" {
  bucket = google_storage_bucket.processed.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.classify.email}"
}

resource "google_storage_bucket_iam_member" "classify_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.classify.email}"
}

resource "google_project_iam_member" "classify_datastore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.classify.email}"
}

resource "google_project_iam_member" "classify_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.classify.email}"
}

# --------------------------------------------------------------------------
# sweep

resource "google_storage_bucket_iam_member" "sweep_incoming" {
  bucket = google_storage_bucket.incoming.name
  role   = google_project_iam_custom_role.incoming_consumer.id
  member = "serviceAccount:${google_service_account.sweep.email}"
}

resource "google_storage_bucket_iam_member" "sweep_processed_viewer" {
  bucket = google_storage_bucket.processed.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.sweep.email}"
}

resource "google_storage_bucket_iam_member" "sweep_processed_creator" {
  bucket = google_storage_bucket.processed.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.sweep.email}"
}

resource "google_storage_bucket_iam_member" "sweep_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.sweep.email}"
}

resource "google_project_iam_member" "sweep_datastore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.sweep.email}"
}

# --------------------------------------------------------------------------
# predict

resource "google_storage_bucket_iam_member" "predict_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.predict.email}"
}

resource "google_storage_bucket_iam_member" "predict_allowed" {
  for_each = toset(var.predict_allowed_buckets)

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.predict.email}"
}

resource "google_project_iam_member" "predict_datastore" {
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = "serviceAccount:${google_service_account.predict.email}"
}

# --------------------------------------------------------------------------
# training

resource "google_storage_bucket_iam_member" "training_data" {
  bucket = google_storage_bucket.training_data.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.training.email}"
}

resource "google_storage_bucket_iam_member" "training_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.training.email}"
}

# --------------------------------------------------------------------------
# Google service agents

# Eventarc's Cloud Storage triggers publish through Pub/Sub as the project's
# Cloud Storage service agent.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_project_iam_member" "gcs_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Dead-lettering: the Pub/Sub service agent forwards undeliverable events to
# the dead-letter topic (its subscriber grant on the trigger's subscription
# is made by cloudbuild.yaml's dead-letter step, see functions.tf).
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
