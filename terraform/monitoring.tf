# Log-based metrics, alert policies and a dashboard.

locals {
  function_services = [
    google_cloudfunctions2_function.functions["classify"].name,
    google_cloudfunctions2_function.functions["sweep"].name,
    google_cloudfunctions2_function.functions["predict"].name,
  ]
  function_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(${join(" OR ", [for s in local.function_services : "\"${s}\""])})"
  channels        = var.alert_email == "" ? [] : [google_monitoring_notification_channel.email[0].id]

  # Errors counted per minute: a DELTA count metric aligned with ALIGN_DELTA
  # over 60 s gives "entries in that minute", the unit of
  # error_alert_per_minute (ALIGN_RATE would give entries per second).
  per_minute_count = {
    alignment_period   = "60s"
    per_series_aligner = "ALIGN_DELTA"
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  project      = var.project_id
  display_name = "Fashion sorter alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_logging_metric" "function_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}/function_errors"
  description = "Log entries of severity ERROR or worse from the functions."
  filter      = "${local.function_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "service"
      value_type = "STRING"
    }
  }

  label_extractors = {
    service = "EXTRACT(resource.labels.service_name)"
  }
}

resource "google_logging_metric" "classifications" {
  project     = var.project_id
  name        = "${var.name_prefix}/classifications"
  description = "Finished classifications by status (classified, needs_review, rejected, skipped)."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.functions["classify"].name}\" AND jsonPayload.status:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "status"
      value_type = "STRING"
    }
  }

  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
  }
}

# A new log-based metric is not usable in an alert policy at once: creating
# the policy right after the metric fails with "Cannot find metric(s)" for
# up to about ten minutes. The policy waits for this (first apply only).
resource "time_sleep" "log_metrics_ready" {
  create_duration = "600s"
  triggers = {
    function_errors = google_logging_metric.function_errors.id
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  project               = var.project_id
  display_name          = "Fashion sorter: function errors"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "ERROR log entries per minute above ${var.error_alert_per_minute}"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.error_alert_per_minute
      duration        = "300s"
      aggregations {
        alignment_period     = local.per_minute_count.alignment_period
        per_series_aligner   = local.per_minute_count.per_series_aligner
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  depends_on = [time_sleep.log_metrics_ready]

  documentation {
    content   = "The functions log errors. Look at Logs Explorer for the services ${join(", ", local.function_services)}."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "backlog_age" {
  project               = var.project_id
  display_name          = "Fashion sorter: storage events waiting"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "Oldest undelivered upload event older than ${var.backlog_alert_seconds} s"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=starts_with(\"eventarc-${var.region}-${google_cloudfunctions2_function.functions["classify"].name}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.backlog_alert_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "classify is not keeping up or keeps failing: events wait in Eventarc's subscription. Check the function's errors and max instances."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "Fashion sorter: dead-lettered upload events"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "Messages in the dead-letter subscription"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letters["classify"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Upload events failed every delivery attempt. Pull ${google_pubsub_subscription.dead_letters["classify"].name} to see which objects; the sweep retries them from the incoming bucket."
    mime_type = "text/markdown"
  }
}

locals {
  # The dashboard's charts, in reading order: title, plot type, the time
  # series and their aggregation.
  dashboard_charts = [
    { title = "Classifications by status", plot = "STACKED_BAR", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.classifications.name}\" AND resource.type=\"cloud_run_revision\"", aggregation = { alignmentPeriod = "300s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.status"] } },
    { title = "Function errors per minute", plot = "LINE", filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\" AND resource.type=\"cloud_run_revision\"", aggregation = { alignmentPeriod = local.per_minute_count.alignment_period, perSeriesAligner = local.per_minute_count.per_series_aligner, crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.service"] } },
    { title = "Request latency (p95)", plot = "LINE", filter = "metric.type=\"run.googleapis.com/request_latencies\" AND resource.type=\"cloud_run_revision\"", aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_PERCENTILE_95", crossSeriesReducer = "REDUCE_MAX", groupByFields = ["resource.label.service_name"] } },
    { title = "Instances", plot = "LINE", filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\"", aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["resource.label.service_name"] } },
  ]

  # Two 6x4 tiles a row in a 12-column mosaic. Positions of 0 are left out:
  # the API drops zero-valued fields from the dashboard it returns, so a
  # written 0 would show as a change on every plan.
  dashboard_tile_width  = 6
  dashboard_tile_height = 4
  dashboard_tiles = [
    for i, chart in local.dashboard_charts : merge(
      i % 2 == 0 ? {} : { xPos = local.dashboard_tile_width },
      i < 2 ? {} : { yPos = floor(i / 2) * local.dashboard_tile_height },
      {
        width  = local.dashboard_tile_width
        height = local.dashboard_tile_height
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [{
              plotType        = chart.plot
              timeSeriesQuery = { timeSeriesFilter = { filter = chart.filter, aggregation = chart.aggregation } }
            }]
          }
        }
      },
    )
  ]
}

resource "google_monitoring_dashboard" "main" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "Fashion sorter"
    mosaicLayout = {
      columns = 12
      tiles   = local.dashboard_tiles
    }
  })
}
