# Former addresses. These resources were written out one by one before they
# became tables iterated with for_each (functions.tf's local.functions,
# function_invokers and dead_letter_topics, main.tf's bucket_names); these
# blocks tell Terraform that an existing deployment's objects are the
# tables' instances, so the next apply renames them in the state instead of
# destroying and recreating them. They can go once every deployment has
# applied this version.

moved {
  from = google_cloudfunctions2_function.classify
  to   = google_cloudfunctions2_function.functions["classify"]
}

moved {
  from = google_cloudfunctions2_function.sweep
  to   = google_cloudfunctions2_function.functions["sweep"]
}

moved {
  from = google_cloudfunctions2_function.predict
  to   = google_cloudfunctions2_function.functions["predict"]
}

moved {
  from = google_cloudfunctions2_function.review
  to   = google_cloudfunctions2_function.functions["review"]
}

moved {
  from = google_pubsub_topic.dead_letter
  to   = google_pubsub_topic.dead_letters["classify"]
}

moved {
  from = google_pubsub_topic.events_dead_letter
  to   = google_pubsub_topic.dead_letters["events"]
}

moved {
  from = google_pubsub_subscription.dead_letter
  to   = google_pubsub_subscription.dead_letters["classify"]
}

moved {
  from = google_pubsub_subscription.events_dead_letter
  to   = google_pubsub_subscription.dead_letters["events"]
}

moved {
  from = google_storage_bucket.incoming
  to   = google_storage_bucket.buckets["incoming"]
}

moved {
  from = google_storage_bucket.processed
  to   = google_storage_bucket.buckets["processed"]
}

moved {
  from = google_storage_bucket.models
  to   = google_storage_bucket.buckets["models"]
}

moved {
  from = google_storage_bucket.training_data
  to   = google_storage_bucket.buckets["training_data"]
}

moved {
  from = google_storage_bucket.dataflow
  to   = google_storage_bucket.buckets["dataflow"]
}

moved {
  from = google_pubsub_topic_iam_member.dead_letter_publisher
  to   = google_pubsub_topic_iam_member.dead_letter_publishers["classify"]
}

moved {
  from = google_pubsub_topic_iam_member.events_dead_letter_publisher
  to   = google_pubsub_topic_iam_member.dead_letter_publishers["events"]
}

moved {
  from = google_cloud_run_service_iam_member.classify_invoker
  to   = google_cloud_run_service_iam_member.invokers["classify"]
}

moved {
  from = google_cloud_run_service_iam_member.sweep_invoker
  to   = google_cloud_run_service_iam_member.invokers["sweep"]
}
