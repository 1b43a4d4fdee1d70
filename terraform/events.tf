# --------------------------------------------------------------------------
# Completion events (docs/events.md): the classify and sweep functions publish
# one CloudEvent per finished record version to the events topic
# (EVENTS_TOPIC). Downstream:
#
# - BigQuery: a BigQuery subscription writes every event into the events
#   table, whose schema is derived from the event's JSON Schema
#   (schemas/classification-event.v1.json -> scripts/bigquery_schema.py ->
#   bigquery/events-table.schema.json). use_table_schema: each top-level
#   field of the event's JSON lands in its own column (data as a RECORD), so
#   queries read typed columns instead of parsing a JSON string; write_metadata
#   adds subscription_name, message_id, publish_time and attributes (the
#   table is partitioned on publish_time). drop_unknown_fields: a field a
#   later minor version of the event adds is dropped until the table gains
#   its column, instead of holding every message back.
# - A webhook (optional, events_webhook_url): a push subscription posting
#   the CloudEvent itself (no wrapper) with an OIDC token of the webhook
#   account, retried with backoff and dead-lettered after
#   events_max_delivery_attempts attempts.
#
# The topic has no Pub/Sub schema: Pub/Sub schemas are Avro or Protocol
# Buffers, the event's schema is a JSON Schema; it is published in the
# repository and checked by the tests (tests/events, tests/deploy).

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Events carry classification results and object names, no image content; Google-managed encryption is enough
  project                    = var.project_id
  name                       = "${var.name_prefix}-events"
  labels                     = local.labels
  message_retention_duration = "604800s"

  depends_on = [time_sleep.apis_ready]
}

# Events no subscriber could take go to functions.tf's dead-letter table
# (google_pubsub_topic.dead_letters["events"]), kept a week for inspection
# and replay.

resource "google_bigquery_dataset" "events" {
  #checkov:skip=CKV_GCP_81:Classification results hold no personal data; Google-managed encryption is enough
  project       = var.project_id
  dataset_id    = "${replace(var.name_prefix, "-", "_")}_events"
  friendly_name = "Fashion sorter events"
  description   = "Completion events of the fashion sorter, written by a Pub/Sub BigQuery subscription (docs/events.md)."
  location      = var.events_bigquery_location
  labels        = local.labels

  depends_on = [time_sleep.apis_ready]
}

resource "google_bigquery_table" "events" {
  #checkov:skip=CKV_GCP_80:Classification results hold no personal data; Google-managed encryption is enough
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.events.dataset_id
  table_id            = "events"
  description         = "One row per published completion event (at least once: de-duplicate on id). Schema derived from schemas/classification-event.v1.json."
  labels              = local.labels
  deletion_protection = var.events_table_deletion_protection
  schema              = file("${path.module}/bigquery/events-table.schema.json")
  clustering          = ["type"]

  time_partitioning {
    type  = "DAY"
    field = "publish_time"
  }
}

resource "google_pubsub_subscription" "events_bigquery" {
  project = var.project_id
  name    = "${var.name_prefix}-events-bigquery"
  topic   = google_pubsub_topic.events.id
  labels  = local.labels

  bigquery_config {
    table               = "${google_bigquery_table.events.project}.${google_bigquery_table.events.dataset_id}.${google_bigquery_table.events.table_id}"
    use_table_schema    = true
    write_metadata      = true
    drop_unknown_fields = true
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters["events"].id
    max_delivery_attempts = var.events_max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_bigquery_table_iam_member.events_writer,
    google_pubsub_topic_iam_member.dead_letter_publishers,
  ]
}

resource "google_pubsub_subscription" "events_webhook" {
  count = var.events_webhook_url == "" ? 0 : 1

  project              = var.project_id
  name                 = "${var.name_prefix}-events-webhook"
  topic                = google_pubsub_topic.events.id
  labels               = local.labels
  ack_deadline_seconds = 30

  push_config {
    push_endpoint = var.events_webhook_url

    oidc_token {
      service_account_email = google_service_account.accounts["webhook"].email
      audience              = var.events_webhook_audience == "" ? var.events_webhook_url : var.events_webhook_audience
    }

    # The request body is the CloudEvent itself (structured JSON mode), as
    # the local events push sends it (localcloud/event_push.py).
    no_wrapper {
      write_metadata = false
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters["events"].id
    max_delivery_attempts = var.events_max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publishers,
    google_service_account_iam_member.webhook_token_creator,
  ]
}
