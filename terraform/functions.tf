# The four gen2 functions (classify, sweep, predict, review), one resource
# over local.functions, all built from one source archive (make bundle):
# main.py at the archive root re-exports the entry points of functions/main.py.
#
# Sizing, from the measurements in the design: a LiteRT instance starts in
# about 0.1 s at about 50 MB RSS; inference is 3-7 ms per image on one thread
# and decoding a 2000x2000 JPEG about 14-34 ms. 512Mi holds the runtime, the
# model and a 20 MB upload with its decoded pixels. classify runs one event
# per instance (concurrency 1): an event's work is CPU-bound and short, and
# scaling out by instance keeps each event's memory bounded. predict takes a
# few requests per instance (predict_concurrency, default 4): requests spend
# part of their time in network I/O, and the model is shared. Everything
# scales to zero (min instances 0), so an idle deployment costs storage only.

locals {
  function_source = {
    bucket = google_storage_bucket.buckets["models"].name
    object = var.function_source_object
  }

  # One environment for every function (shared/settings.py reads it), merged
  # with each function's extras.
  function_environment = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    INCOMING_BUCKET      = google_storage_bucket.buckets["incoming"].name
    PROCESSED_BUCKET     = google_storage_bucket.buckets["processed"].name
    MODELS_BUCKET        = google_storage_bucket.buckets["models"].name
    CONFIDENCE_THRESHOLD = tostring(var.confidence_threshold)
    CLASS_THRESHOLDS     = var.class_thresholds
    FIRESTORE_DATABASE   = google_firestore_database.main.name
    LOG_LEVEL            = var.log_level
    EVENTS_TOPIC         = google_pubsub_topic.events.id
    STATS_SHARDS         = tostring(var.stats_shards)
  }
  function_extra_environment = {
    classify = {}
    sweep = {
      SWEEP_MIN_AGE_SECONDS = tostring(var.sweep_min_age_seconds)
      SWEEP_BUDGET_SECONDS  = tostring(var.sweep_budget_seconds)
      EVENTS_GRACE_SECONDS  = tostring(var.events_grace_seconds)
    }
    predict = {
      GCS_ALLOWED_BUCKETS = join(",", var.predict_allowed_buckets)
      CORS_ORIGINS        = var.cors_origins
      # The Functions Framework serves with gunicorn threads=THREADS, by
      # default 4 x the CPU count (functions_framework/_http/gunicorn.py):
      # one thread per request Cloud Run lets in.
      THREADS = tostring(var.predict_concurrency)
    }
    # review.tf: the audience of IAP's signed header (empty without IAP),
    # and V4 signed image URLs (the function signs them as its account).
    review = {
      IAP_AUDIENCE      = local.review_iap_audience
      REVIEW_IMAGE_URLS = "signed"
    }
  }

  # What differs between the functions; each runs as its own account
  # (iam.tf, the same key) with the shared environment merged with its
  # extras. classify runs one event per instance; predict takes
  # predict_concurrency requests; the sweep runs alone, within its budget.
  # review (review.tf) is never public: internal traffic and the load
  # balancer only. event_bucket: the bucket whose uploads trigger the
  # function (null: an HTTP function). api_key_secret: the Secret Manager
  # secret of the API key ("" : none).
  functions = {
    classify = {
      description     = "Classifies each upload to the incoming bucket and files it in the processed bucket."
      entry_point     = "classify_upload"
      concurrency     = 1
      max_instances   = var.classify_max_instances
      timeout_seconds = 120
      ingress         = "ALLOW_INTERNAL_ONLY"
      event_bucket    = google_storage_bucket.buckets["incoming"].name
      api_key_secret  = ""
    }
    sweep = {
      description     = "Scheduled sweep: classifies uploads whose events were lost or dead-lettered."
      entry_point     = "sweep"
      concurrency     = 1
      max_instances   = 1
      timeout_seconds = var.sweep_budget_seconds + 120
      ingress         = "ALLOW_ALL"
      event_bucket    = null
      api_key_secret  = ""
    }
    predict = {
      description     = "HTTPS prediction API over the current model."
      entry_point     = "predict"
      concurrency     = var.predict_concurrency
      max_instances   = var.predict_max_instances
      timeout_seconds = 60
      ingress         = "ALLOW_ALL"
      event_bucket    = null
      api_key_secret  = var.api_key_secret_id
    }
    review = {
      description     = "The review desk: the review queue's API and page (behind IAP when review_iap_enabled)."
      entry_point     = "review"
      concurrency     = 4
      max_instances   = 2
      timeout_seconds = 60
      ingress         = "ALLOW_INTERNAL_AND_GCLB"
      event_bucket    = null
      api_key_secret  = ""
    }
  }

  # Every function is built by the build account into the project's
  # repository, after that account's grants exist.
  function_build = {
    service_account   = google_service_account.accounts["build"].id
    docker_repository = google_artifact_registry_repository.images.id
  }
}

resource "google_cloudfunctions2_function" "functions" {
  for_each = local.functions
  #checkov:skip=CKV_GCP_124:sweep and predict accept external ingress by design (Cloud Scheduler is not an internal source; predict is the public HTTPS API), guarded by IAM (run.invoker) or the API key; classify and review stay internal

  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${each.key}"
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime           = var.functions_runtime
    entry_point       = each.value.entry_point
    service_account   = local.function_build.service_account
    docker_repository = local.function_build.docker_repository
    source {
      storage_source {
        bucket = local.function_source.bucket
        object = local.function_source.object
      }
    }
  }

  service_config {
    available_memory                 = var.function_memory
    available_cpu                    = "1"
    max_instance_request_concurrency = each.value.concurrency
    min_instance_count               = 0
    max_instance_count               = each.value.max_instances
    timeout_seconds                  = each.value.timeout_seconds
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.accounts[each.key].email
    environment_variables            = merge(local.function_environment, local.function_extra_environment[each.key])

    # The API key (predict), only when api_key_secret_id is set.
    dynamic "secret_environment_variables" {
      for_each = each.value.api_key_secret == "" ? [] : [each.value.api_key_secret]
      content {
        key        = "API_KEY"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  # Eventarc (classify): google.cloud.storage.object.v1.finalized on the
  # incoming bucket only; the processed bucket is a different bucket, so
  # moves never re-trigger. Failed deliveries are retried with backoff;
  # after event_max_delivery_attempts they go to the dead-letter topic.
  dynamic "event_trigger" {
    for_each = each.value.event_bucket == null ? [] : [each.value.event_bucket]
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.accounts[each.key].email
      event_filters {
        attribute = "bucket"
        value     = event_trigger.value
      }
    }
  }

  # The trigger waits for its agents' and account's grants to propagate;
  # the builds, for the build account's grants; predict, for its access to
  # the API key.
  depends_on = [
    time_sleep.apis_ready,
    time_sleep.eventarc_iam,
    google_project_iam_member.grants,
    google_storage_bucket_iam_member.grants,
    google_artifact_registry_repository_iam_member.build_writer,
    google_secret_manager_secret_iam_member.predict_api_key,
  ]

  lifecycle {
    precondition {
      condition     = length(distinct(values(local.bucket_names))) == length(local.bucket_names)
      error_message = "The buckets must have different names: a move from incoming to processed in one bucket would re-trigger classify."
    }
  }
}

resource "google_secret_manager_secret_iam_member" "predict_api_key" {
  count = var.api_key_secret_id == "" ? 0 : 1

  project   = var.project_id
  secret_id = var.api_key_secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.accounts["predict"].email}"
}

# --------------------------------------------------------------------------
# Invokers. The Eventarc trigger calls classify as the classify account; the
# scheduler calls sweep as the scheduler account. predict is public only when
# an API key guards it; otherwise callers need roles/run.invoker. review's
# only invoker is IAP's service agent (review.tf).

locals {
  # function -> the account (iam.tf) that invokes it
  function_invokers = {
    classify = "classify"
    sweep    = "scheduler"
  }
}

resource "google_cloud_run_service_iam_member" "invokers" {
  for_each = local.function_invokers

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.functions[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.accounts[each.value].email}"
}

resource "google_cloud_run_service_iam_member" "predict_public" {
  #checkov:skip=CKV_GCP_102:Public only when api_key_secret_id is set (count); the function then requires the API key on every route but /health
  count = var.api_key_secret_id == "" ? 0 : 1

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.functions["predict"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --------------------------------------------------------------------------
# Dead letters: a topic for each kind of message given up on, and a
# subscription on it that keeps them a week for inspection and replay.
#
# - classify: upload events the classify function never accepted. Eventarc
#   creates and owns the Pub/Sub subscription behind the trigger and the
#   provider cannot set its dead-letter policy, so cloudbuild.yaml's
#   `dead-letter` step points that subscription at this topic after each
#   apply (gcloud pubsub subscriptions update --dead-letter-topic). The sweep
#   also picks the objects up, as they are still in the incoming bucket.
# - events: completion events no subscriber could take (events.tf).
#
# The Pub/Sub service agent publishes to them (iam.tf).

locals {
  dead_letter_topics = {
    classify = "${var.name_prefix}-classify-dead-letter"
    events   = "${var.name_prefix}-events-dead-letter"
  }
}

resource "google_pubsub_topic" "dead_letters" {
  for_each = local.dead_letter_topics
  #checkov:skip=CKV_GCP_83:Dead letters carry object names and classification results, no image content; Google-managed encryption is enough

  project                    = var.project_id
  name                       = each.value
  labels                     = local.labels
  message_retention_duration = "604800s"

  depends_on = [time_sleep.apis_ready]
}

resource "google_pubsub_subscription" "dead_letters" {
  for_each = local.dead_letter_topics

  project                    = var.project_id
  name                       = each.value
  topic                      = google_pubsub_topic.dead_letters[each.key].id
  labels                     = local.labels
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# --------------------------------------------------------------------------
# The scheduled sweep, called with an OIDC token of the scheduler account.

resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-sweep"
  description      = "Calls the sweep function, which classifies uploads whose events were lost."
  schedule         = var.sweep_schedule
  time_zone        = var.sweep_time_zone
  attempt_deadline = "${var.sweep_budget_seconds + 120}s"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.functions["sweep"].service_config[0].uri
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.accounts["scheduler"].email
      audience              = google_cloudfunctions2_function.functions["sweep"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.invokers]
}
