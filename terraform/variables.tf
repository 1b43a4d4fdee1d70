variable "project_id" {
  type        = string
  description = "The Google Cloud project that holds every resource."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project id (6-30 lowercase letters, digits and hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, the buckets, Eventarc, the scheduler, the training job and Artifact Registry."
  default     = "europe-west1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name. Bucket names are <name_prefix>-<project_id>-<role> unless bucket_names overrides them."
  default     = "fashion"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "bucket_names" {
  type        = map(string)
  description = "Optional explicit bucket names by role (incoming, processed, models, training_data); missing roles get the default name."
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.bucket_names) : contains(["incoming", "processed", "models", "training_data"], k)])
    error_message = "bucket_names keys must be among incoming, processed, models, training_data."
  }
}

variable "firestore_location" {
  type        = string
  description = "Location of the Firestore database (a region such as europe-west1 or a multi-region such as eur3). Cannot change after creation."
  default     = "europe-west1"
  validation {
    condition     = length(var.firestore_location) > 0
    error_message = "firestore_location must not be empty."
  }
}

variable "firestore_database" {
  type        = string
  description = "Firestore database id; \"(default)\" uses the project's default database."
  default     = "(default)"
  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{3,62}$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 lowercase letters, digits and hyphens."
  }
}

variable "function_source_object" {
  type        = string
  description = "Name of the functions source archive (make bundle) in the models bucket, e.g. sources/functions-<sha256>.zip. A new name redeploys the functions."
  validation {
    condition     = can(regex("^sources/[A-Za-z0-9._-]+\\.zip$", var.function_source_object))
    error_message = "function_source_object must look like sources/<name>.zip."
  }
}

variable "functions_runtime" {
  type        = string
  description = "Python runtime of the functions; ai-edge-litert 2.3 ships wheels for Python 3.11-3.13 only."
  default     = "python312"
  validation {
    condition     = contains(["python311", "python312", "python313"], var.functions_runtime)
    error_message = "functions_runtime must be python311, python312 or python313 (the versions ai-edge-litert supports)."
  }
}

variable "function_memory" {
  type        = string
  description = "Memory of each function instance. Serving holds about 100 MB (measured PSS, docs/benchmarks.md) plus the images being decoded: one full-size decode at a time per instance, up to about 240 MB at the default 16-megapixel MAX_IMAGE_PIXELS."
  default     = "512Mi"
  validation {
    condition     = contains(["256Mi", "512Mi", "1Gi", "2Gi", "4Gi"], var.function_memory)
    error_message = "function_memory must be one of 256Mi, 512Mi, 1Gi, 2Gi, 4Gi."
  }
}

variable "classify_max_instances" {
  type        = number
  description = "Upper bound on classify instances (each handles one event at a time)."
  default     = 10
  validation {
    condition     = var.classify_max_instances >= 1 && var.classify_max_instances <= 100
    error_message = "classify_max_instances must be between 1 and 100."
  }
}

variable "predict_max_instances" {
  type        = number
  description = "Upper bound on predict instances."
  default     = 5
  validation {
    condition     = var.predict_max_instances >= 1 && var.predict_max_instances <= 100
    error_message = "predict_max_instances must be between 1 and 100."
  }
}

variable "predict_concurrency" {
  type        = number
  description = "Concurrent requests per predict instance. Inference is about 3-7 ms per image on one thread and decoding dominates, so a few requests share one vCPU well."
  default     = 4
  validation {
    condition     = var.predict_concurrency >= 1 && var.predict_concurrency <= 16
    error_message = "predict_concurrency must be between 1 and 16."
  }
}

variable "confidence_threshold" {
  type        = number
  description = "The auto threshold of classes the model's manifest measured no per-class thresholds for (older models): below this top-1 probability a photo goes to review/ (CONFIDENCE_THRESHOLD)."
  default     = 0.6
  validation {
    condition     = var.confidence_threshold >= 0 && var.confidence_threshold <= 1
    error_message = "confidence_threshold must be between 0 and 1."
  }
}

variable "class_thresholds" {
  type        = string
  description = "Per-class overrides of the model manifest's thresholds, \"<label>=<auto>[/<check>]\" comma-separated, \"*\" for every class (\"*=0.6\": one threshold for all); empty: the manifest's (CLASS_THRESHOLDS, shared/thresholds.py)."
  default     = ""
  validation {
    condition     = var.class_thresholds == "" || can(regex("^\\s*[^=,]+=[0-9.]+(/[0-9.]+)?\\s*(,\\s*[^=,]+=[0-9.]+(/[0-9.]+)?\\s*)*$", var.class_thresholds))
    error_message = "class_thresholds must be comma-separated <label>=<auto>[/<check>] entries with numbers between 0 and 1."
  }
}

variable "log_level" {
  type        = string
  description = "Log level of the functions (LOG_LEVEL)."
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "predict_allowed_buckets" {
  type        = list(string)
  description = "Buckets whose objects predict may read through gs:// URIs (GCS_ALLOWED_BUCKETS); its account gets read access to exactly these."
  default     = []
  validation {
    condition     = alltrue([for b in var.predict_allowed_buckets : can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", b))])
    error_message = "predict_allowed_buckets must hold bucket names."
  }
}

variable "api_key_secret_id" {
  type        = string
  description = "Secret Manager secret id holding predict's API key. Empty (default): predict stays private behind IAM. Set: the key is mounted as API_KEY and predict becomes publicly invokable (allUsers), the key guarding it."
  default     = ""
  validation {
    condition     = var.api_key_secret_id == "" || can(regex("^[A-Za-z0-9_-]{1,255}$", var.api_key_secret_id))
    error_message = "api_key_secret_id must be empty or a Secret Manager secret id."
  }
}

variable "cors_origins" {
  type        = string
  description = "Comma-separated origins allowed to call predict from a browser, or \"*\"; empty turns CORS off (CORS_ORIGINS)."
  default     = ""
  validation {
    condition     = !can(regex("\\s", var.cors_origins))
    error_message = "cors_origins must not contain spaces."
  }
}

variable "sweep_schedule" {
  type        = string
  description = "Cron schedule (in sweep_time_zone) of the sweep that catches uploads whose events were lost."
  default     = "*/15 * * * *"
  validation {
    condition     = length(split(" ", var.sweep_schedule)) == 5
    error_message = "sweep_schedule must be a five-field cron expression."
  }
}

variable "sweep_time_zone" {
  type        = string
  description = "Time zone of sweep_schedule."
  default     = "Etc/UTC"
  validation {
    condition     = length(var.sweep_time_zone) > 0
    error_message = "sweep_time_zone must not be empty."
  }
}

variable "sweep_min_age_seconds" {
  type        = number
  description = "The sweep leaves uploads younger than this to their events (SWEEP_MIN_AGE_SECONDS)."
  default     = 300
  validation {
    condition     = var.sweep_min_age_seconds >= 0
    error_message = "sweep_min_age_seconds must not be negative."
  }
}

variable "sweep_budget_seconds" {
  type        = number
  description = "Time budget of one sweep run (SWEEP_BUDGET_SECONDS); the function timeout and the scheduler deadline are this plus 120 s."
  default     = 240
  validation {
    condition     = var.sweep_budget_seconds >= 30 && var.sweep_budget_seconds <= 1680
    error_message = "sweep_budget_seconds must be between 30 and 1680 (Cloud Scheduler allows 1800 s per attempt)."
  }
}

variable "rejected_retention_days" {
  type        = number
  description = "Days after which objects under rejected/ in the processed bucket are deleted; 0 keeps them."
  default     = 30
  validation {
    condition     = var.rejected_retention_days >= 0 && var.rejected_retention_days <= 3650
    error_message = "rejected_retention_days must be between 0 and 3650."
  }
}

variable "processed_noncurrent_days" {
  type        = number
  description = "Days a replaced copy in the processed bucket (an older upload of a name that was uploaded again) is kept as a noncurrent version before it is deleted."
  default     = 30
  validation {
    condition     = var.processed_noncurrent_days >= 1 && var.processed_noncurrent_days <= 3650
    error_message = "processed_noncurrent_days must be between 1 and 3650."
  }
}

variable "reports_retention_days" {
  type        = number
  description = "Days after which objects under reports/ (sweep and training reports) are deleted; 0 keeps them."
  default     = 90
  validation {
    condition     = var.reports_retention_days >= 0 && var.reports_retention_days <= 3650
    error_message = "reports_retention_days must be between 0 and 3650."
  }
}

variable "model_noncurrent_versions" {
  type        = number
  description = "Noncurrent versions of each object kept in the versioned models bucket, besides the live one (older ones are deleted)."
  default     = 5
  validation {
    condition     = var.model_noncurrent_versions >= 1 && var.model_noncurrent_versions <= 100
    error_message = "model_noncurrent_versions must be between 1 and 100."
  }
}

variable "event_max_delivery_attempts" {
  type        = number
  description = "Delivery attempts of one storage event before it goes to the dead-letter topic."
  default     = 10
  validation {
    condition     = var.event_max_delivery_attempts >= 5 && var.event_max_delivery_attempts <= 100
    error_message = "event_max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "training_image_tag" {
  type        = string
  description = "Tag of the trainer image in Artifact Registry (cloudbuild.yaml pushes one per build, tagged with the build id)."
  default     = "latest"
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$", var.training_image_tag))
    error_message = "training_image_tag must be a valid image tag."
  }
}

variable "training_args" {
  type        = list(string)
  description = "Extra arguments of the training job after run --data ... --out ... (e.g. [\"--alpha\", \"1.0\"])."
  default     = ["--weights", "imagenet"]
  validation {
    condition     = alltrue([for a in var.training_args : !contains(["--data", "--out", "--work-dir"], a)])
    error_message = "training_args must not repeat --data, --out or --work-dir (the job sets them)."
  }
}

variable "training_cpu" {
  type        = string
  description = "vCPUs of the training job (Cloud Run jobs: 1, 2, 4, 6 or 8 whole vCPUs)."
  default     = "4"
  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.training_cpu)
    error_message = "training_cpu must be 1, 2, 4, 6 or 8."
  }
}

variable "training_memory" {
  type        = string
  description = "Memory of the training job in whole GiB (TensorFlow with the data set in memory). Cloud Run allows 1-32 GiB, and per vCPU count: 1: up to 4, 2: up to 8, 4: 2-16, 6: 4-24, 8: 4-32 (checked against training_cpu before the apply)."
  default     = "8Gi"
  validation {
    condition     = can(regex("^[0-9]+Gi$", var.training_memory)) && try(tonumber(trimsuffix(var.training_memory, "Gi")) >= 1 && tonumber(trimsuffix(var.training_memory, "Gi")) <= 32, false)
    error_message = "training_memory must be 1Gi to 32Gi (whole GiB; Cloud Run's maximum is 32 GiB)."
  }
}

variable "alert_email" {
  type        = string
  description = "Address that receives the alerts; empty creates the policies without a notification channel."
  default     = ""
  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be empty or an e-mail address."
  }
}

variable "backlog_alert_seconds" {
  type        = number
  description = "Alert when the oldest undelivered storage event is older than this."
  default     = 900
  validation {
    condition     = var.backlog_alert_seconds >= 60
    error_message = "backlog_alert_seconds must be at least 60."
  }
}

variable "error_alert_per_minute" {
  type        = number
  description = "Alert when function errors exceed this many log entries of severity ERROR per minute (each minute counted alone, for 5 minutes in a row)."
  default     = 1
  validation {
    condition     = var.error_alert_per_minute > 0
    error_message = "error_alert_per_minute must be positive."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.labels) : can(regex("^[a-z][a-z0-9_-]{0,62}$", k))])
    error_message = "label keys must be lowercase letters, digits, _ or -, starting with a letter."
  }
}

variable "review_iap_enabled" {
  type        = bool
  description = "Put the review desk behind an HTTPS load balancer with Identity-Aware Proxy (review.tf). Needs review_domain and review_group. Off: no load balancer, and the review function is reachable from the project's network only."
  default     = false
  validation {
    condition     = var.review_iap_enabled == true || var.review_iap_enabled == false
    error_message = "review_iap_enabled must be true or false."
  }
}

variable "review_domain" {
  type        = string
  description = "Host name of the review desk (a Google-managed certificate is issued for it; its DNS A record must point at the review_address output). Used when review_iap_enabled."
  default     = ""
  validation {
    condition     = var.review_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.review_domain))
    error_message = "review_domain must be empty or a lowercase host name such as review.example.com."
  }
}

variable "review_group" {
  type        = string
  description = "Google group whose members may use the review desk (roles/iap.httpsResourceAccessor), e.g. catalogue-reviewers@example.com. Used when review_iap_enabled."
  default     = ""
  validation {
    condition     = var.review_group == "" || can(regex("^[^@\\s:]+@[a-z0-9.-]+\\.[a-z]{2,63}$", var.review_group))
    error_message = "review_group must be empty or a group e-mail address (without the group: prefix)."
  }
}
