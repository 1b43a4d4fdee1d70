output "incoming_bucket" {
  description = "Upload photos here (gs://NAME/)."
  value       = google_storage_bucket.buckets["incoming"].name
}

output "processed_bucket" {
  description = "Sorted photos: <category>/, review/<category>/, rejected/."
  value       = google_storage_bucket.buckets["processed"].name
}

output "models_bucket" {
  description = "Model versions (models/<version>/), the current pointer and the functions source archives (sources/)."
  value       = google_storage_bucket.buckets["models"].name
}

output "training_data_bucket" {
  description = "The training data set (fashion-product-images-small/ with styles.csv and images/)."
  value       = google_storage_bucket.buckets["training_data"].name
}

output "predict_url" {
  description = "HTTPS URL of the prediction API."
  value       = google_cloudfunctions2_function.functions["predict"].service_config[0].uri
}

output "sweep_url" {
  description = "HTTPS URL of the sweep function (called by Cloud Scheduler)."
  value       = google_cloudfunctions2_function.functions["sweep"].service_config[0].uri
}

output "classify_url" {
  description = "Internal URL of the classify function (called by Eventarc only)."
  value       = google_cloudfunctions2_function.functions["classify"].service_config[0].uri
}

output "classify_function" {
  description = "Name of the classify function (its Eventarc trigger is looked up by this name)."
  value       = google_cloudfunctions2_function.functions["classify"].name
}

output "classify_trigger" {
  description = "Full name of the Eventarc trigger of classify (cloudbuild.yaml sets its subscription's dead-letter policy)."
  value       = google_cloudfunctions2_function.functions["classify"].event_trigger[0].trigger
}

output "dead_letter_topic" {
  description = "Full name of the dead-letter topic of the upload events."
  value       = google_pubsub_topic.dead_letters["classify"].id
}

output "dead_letter_subscription" {
  description = "Subscription that keeps dead-lettered events for inspection."
  value       = google_pubsub_subscription.dead_letters["classify"].name
}

output "training_job" {
  description = "Name of the Cloud Run Job that trains a new model (gcloud run jobs execute NAME --region REGION)."
  value       = google_cloud_run_v2_job.training.name
}

output "trainer_image" {
  description = "Image the training job runs."
  value       = local.trainer_image
}

output "service_accounts" {
  description = "E-mail of each service account by role."
  value       = { for role, account in google_service_account.accounts : role => account.email }
}

output "event_max_delivery_attempts" {
  description = "Delivery attempts before an upload event is dead-lettered (cloudbuild.yaml's dead-letter step applies it)."
  value       = var.event_max_delivery_attempts
}

output "backfill_template" {
  description = "gs:// path of the backfill's Flex Template spec (written by cloudbuild.yaml's backfill-template step)."
  value       = "gs://${google_storage_bucket.buckets["dataflow"].name}/templates/backfill.json"
}

output "dataflow_bucket" {
  description = "The backfill's Dataflow bucket: the template, staging/ and temp/."
  value       = google_storage_bucket.buckets["dataflow"].name
}

output "dataflow_service_account" {
  description = "Email of the service account the backfill's Dataflow jobs run as (--service-account-email)."
  value       = google_service_account.accounts["dataflow"].email
}

output "backfill_max_workers" {
  description = "The worker cap to launch the backfill with (--max-workers)."
  value       = var.backfill_max_workers
}

output "review_url" {
  description = "Internal URL of the review function (reachable through the load balancer when review_iap_enabled, else from the project's network only)."
  value       = google_cloudfunctions2_function.functions["review"].service_config[0].uri
}

output "review_address" {
  description = "IP address of the review desk's load balancer: point review_domain's DNS A record here (null without IAP)."
  value       = one([for address in google_compute_global_address.review : address.address])
}

output "review_page" {
  description = "The review desk behind IAP (null without IAP)."
  value       = var.review_iap_enabled ? "https://${var.review_domain}/" : null
}

output "events_topic" {
  description = "Full name of the completion events topic (docs/events.md)."
  value       = google_pubsub_topic.events.id
}

output "events_table" {
  description = "The BigQuery table the events are written to, as project.dataset.table."
  value       = "${google_bigquery_table.events.project}.${google_bigquery_table.events.dataset_id}.${google_bigquery_table.events.table_id}"
}

output "events_dead_letter_subscription" {
  description = "Subscription that keeps the events no subscriber could take."
  value       = google_pubsub_subscription.dead_letters["events"].name
}
