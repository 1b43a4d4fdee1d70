# Service accounts and their roles: one per function, one for the training
# job, one for Cloud Scheduler, one that builds the functions. Least
# privilege: bucket-level grants only on the buckets each one touches.
#
# local.role_table below is the one place the grants are written; the
# README's "Service accounts" table describes it and tests/deploy checks both
# against each other. Grants the table cannot hold (they name a resource
# created later or a variable list) follow it: run.invoker on a function
# (functions.tf, review.tf), review's URL signing as itself (review.tf), predict's allow-listed buckets and API key secret, the
# build account's write access to the image repository.

locals {
  service_accounts = {
    classify  = "classify function"
    sweep     = "sweep function"
    predict   = "predict function"
    training  = "training job"
    scheduler = "Cloud Scheduler caller of the sweep"
    build     = "Cloud Build builds of the functions"
    review    = "review function (the review desk)"
    # the identity of the events push subscription's OIDC token (events.tf)
    webhook  = "OIDC identity of the events webhook's push subscription"
    dataflow = "backfill on Dataflow (Flex Template launcher and workers)"
  }

  # What classify and the sweep both do to the buckets: take uploads out of
  # incoming ("incoming_consumer" is the custom role below), file them in
  # processed (objectUser: a re-upload replaces the older copy of its name,
  # which needs delete as well as create), read the model.
  sorter_bucket_roles = {
    incoming  = ["incoming_consumer"]
    processed = ["roles/storage.objectUser"]
    models    = ["roles/storage.objectViewer"]
  }

  # account -> project roles, and bucket (main.tf's roles) -> roles on it.
  role_table = {
    classify = {
      project = ["roles/datastore.user", "roles/eventarc.eventReceiver"]
      buckets = local.sorter_bucket_roles
    }
    sweep = {
      project = ["roles/datastore.user"]
      buckets = local.sorter_bucket_roles
    }
    predict = {
      project = ["roles/datastore.viewer"]
      buckets = { models = ["roles/storage.objectViewer"] }
    }
    training = {
      project = []
      buckets = { training_data = ["roles/storage.objectViewer"], models = ["roles/storage.objectUser"] }
    }
    scheduler = {
      project = []
      buckets = {}
    }
    # Decisions: read and write records and stats, move files within
    # processed (review/... -> <category>/ or rejected/), read the model's labels.
    review = {
      project = ["roles/datastore.user"]
      buckets = { processed = ["roles/storage.objectUser"], models = ["roles/storage.objectViewer"] }
    }
    # Cloud Build runs the functions' builds as this account (build_config):
    # it reads the source archive in the models bucket and writes build logs.
    build = {
      project = ["roles/logging.logWriter"]
      buckets = { models = ["roles/storage.objectViewer"] }
    }
    # Only signs the webhook's OIDC tokens: no access to anything.
    webhook = {
      project = []
      buckets = {}
    }
    # The backfill (backfill/, docs/backfill.md) does what classify does to
    # the buckets and Firestore, as a Dataflow worker; its own bucket holds
    # the template, staging and temp files. Another source bucket than
    # incoming needs the incoming_consumer role granted there by hand.
    dataflow = {
      project = ["roles/dataflow.worker", "roles/datastore.user"]
      buckets = {
        incoming  = ["incoming_consumer"]
        processed = ["roles/storage.objectUser"]
        models    = ["roles/storage.objectViewer"]
        dataflow  = ["roles/storage.objectAdmin"]
      }
    }
  }

  buckets = { for role, bucket in google_storage_bucket.buckets : role => bucket.name }
  custom_roles = {
    incoming_consumer = google_project_iam_custom_role.incoming_consumer.id
  }

  project_grants = merge([
    for account, grants in local.role_table : {
      for role in grants.project : "${account} ${role}" => { account = account, role = role }
    }
  ]...)
  bucket_grants = merge(flatten([
    for account, grants in local.role_table : [
      for bucket, roles in grants.buckets : {
        for role in roles : "${account} ${bucket} ${role}" => { account = account, bucket = bucket, role = role }
      }
    ]
  ])...)
}

resource "google_service_account" "accounts" {
  for_each = local.service_accounts

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "Fashion sorter: ${each.value}"

  depends_on = [time_sleep.apis_ready]
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

  depends_on = [time_sleep.apis_ready]
}

resource "google_project_iam_member" "grants" {
  for_each = local.project_grants

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.accounts[each.value.account].email}"
}

resource "google_storage_bucket_iam_member" "grants" {
  for_each = local.bucket_grants

  bucket = local.buckets[each.value.bucket]
  role   = lookup(local.custom_roles, each.value.role, each.value.role)
  member = "serviceAccount:${google_service_account.accounts[each.value.account].email}"
}

# predict reads exactly the buckets it is allowed to (GCS_ALLOWED_BUCKETS).
resource "google_storage_bucket_iam_member" "predict_allowed" {
  for_each = toset(var.predict_allowed_buckets)

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.accounts["predict"].email}"
}

# The functions' images go to the project's own repository (build_config's
# docker_repository), so the build account writes there and nowhere else.
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.accounts["build"].email}"
}

# The Dataflow workers pull the backfill's Flex Template image (one image as
# launcher and worker) from the project's repository.
resource "google_artifact_registry_repository_iam_member" "dataflow_reader" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.accounts["dataflow"].email}"
}

# --------------------------------------------------------------------------
# Google service agents

# Eventarc's Cloud Storage triggers publish through Pub/Sub as the project's
# Cloud Storage service agent (reading this data source creates the agent).
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [time_sleep.apis_ready]
}

resource "google_project_iam_member" "gcs_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Granted by Google when the API is enabled; stated here so that the trigger
# can wait for it (below) instead of racing it.
resource "google_project_iam_member" "eventarc_agent" {
  #checkov:skip=CKV_GCP_49:The member is Google's own Eventarc service agent, and eventarc.serviceAgent is the role Google itself grants it; stated only so the trigger can wait for it
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-eventarc.iam.gserviceaccount.com"

  depends_on = [time_sleep.apis_ready]
}

# IAM changes take effect within about two minutes, up to seven (Google's IAM
# "access change propagation"); a first Eventarc trigger created before the
# agents' and the trigger account's grants propagate fails. classify's
# trigger waits for this.
resource "time_sleep" "eventarc_iam" {
  create_duration = "120s"

  depends_on = [
    google_project_iam_member.gcs_agent_publisher,
    google_project_iam_member.eventarc_agent,
    google_project_iam_member.grants,
  ]
}

# Dead-lettering: the Pub/Sub service agent forwards undeliverable messages
# to the dead-letter topics (functions.tf). Its subscriber grants: on the
# classify trigger's subscription by cloudbuild.yaml's dead-letter step, on
# the events subscriptions below (events_dead_letter_subscriber).
resource "google_pubsub_topic_iam_member" "dead_letter_publishers" {
  for_each = local.dead_letter_topics

  project = var.project_id
  topic   = google_pubsub_topic.dead_letters[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

# --------------------------------------------------------------------------
# Completion events (events.tf)

locals {
  # The accounts that finish records and so publish their events (EVENTS_TOPIC).
  event_publishers = {
    classify = "finishes records from upload events"
    sweep    = "finishes records the events missed, republishes pending events"
    review   = "publishes each review decision's event"
  }
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # The Pub/Sub service agent forwards undeliverable events from these
  # subscriptions to the events dead-letter topic (it needs to subscribe to each).
  events_subscriptions = merge(
    { bigquery = google_pubsub_subscription.events_bigquery.name },
    { for s in google_pubsub_subscription.events_webhook : "webhook" => s.name },
  )
}

resource "google_pubsub_topic_iam_member" "events_publishers" {
  for_each = local.event_publishers

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.accounts[each.key].email}"
}

# The BigQuery subscription writes as the Pub/Sub service agent.
resource "google_bigquery_table_iam_member" "events_writer" {
  project    = var.project_id
  dataset_id = google_bigquery_table.events.dataset_id
  table_id   = google_bigquery_table.events.table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "events_dead_letter_subscriber" {
  for_each = local.events_subscriptions

  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# The push subscription's OIDC token is minted by the Pub/Sub service agent
# for the webhook account.
resource "google_service_account_iam_member" "webhook_token_creator" {
  service_account_id = google_service_account.accounts["webhook"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
