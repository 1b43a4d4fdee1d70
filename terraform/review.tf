# The review desk: the `review` function (its JSON API and the page in
# functions/review_page/; an entry of functions.tf's local.functions) and,
# optionally, the HTTPS load balancer with Identity-Aware Proxy in front of it.
#
# The function is never public. Its ingress admits internal traffic and the
# load balancer only, and the only invoker granted here is IAP's service
# agent. With review_iap_enabled = false (the default) nothing else is
# created: the desk then runs locally (`fashionctl up`), and the function is
# reachable from the project's own network only.
#
# With review_iap_enabled = true: a static address, a Google-managed
# certificate for review_domain, a global external Application Load
# Balancer (forwarding rule -> HTTPS proxy -> URL map -> backend service with
# IAP -> serverless NEG of the function), and roles/iap.httpsResourceAccessor
# for review_group. The function verifies IAP's signed header
# (x-goog-iap-jwt-assertion) against IAP_AUDIENCE, the backend service's
# audience, and takes the reviewer's identity from it. Before the first
# apply with IAP, create IAP's service agent once (Google creates it lazily):
#   gcloud beta services identity create --service=iap.googleapis.com --project=PROJECT
# and point review_domain's DNS A record at the `review_address` output; the
# certificate is issued once DNS resolves (up to an hour).

locals {
  review_function_name = "${var.name_prefix}-review"

  # One switch: every resource of the IAP path iterates over this map
  # (empty when off), so that none exists unless it is asked for.
  review_iap = var.review_iap_enabled ? { desk = var.review_domain } : {}

  # The audience IAP signs its header for: /projects/NUMBER/global/backendServices/ID.
  review_iap_audience = join("", [
    for key, backend in google_compute_backend_service.review :
    "/projects/${data.google_project.this.number}/global/backendServices/${backend.generated_id}"
  ])
}

# The function itself is functions.tf's local.functions.review, named
# "${var.name_prefix}-review" (local.review_function_name).

# Cloud Functions has no private key to sign V4 URLs with: the function
# signs the images' URLs through the IAM signBlob API as its own account.
resource "google_service_account_iam_member" "review_signs_urls" {
  service_account_id = google_service_account.accounts["review"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.accounts["review"].email}"
}

# --------------------------------------------------------------------------
# Identity-Aware Proxy (review_iap_enabled)

resource "google_project_service" "review_iap" {
  for_each = var.review_iap_enabled ? toset(["compute.googleapis.com", "iap.googleapis.com"]) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false

  depends_on = [time_sleep.apis_ready]
}

# The same wait as main.tf's apis_ready, for these two APIs.
resource "time_sleep" "review_apis_ready" {
  for_each = local.review_iap

  create_duration = "60s"

  depends_on = [google_project_service.review_iap]
}

resource "google_compute_region_network_endpoint_group" "review" {
  for_each = local.review_iap

  project               = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-review-neg"
  network_endpoint_type = "SERVERLESS"

  # The function by name, not by reference: the function's IAP_AUDIENCE
  # names the backend service, which names this group.
  cloud_function {
    function = local.review_function_name
  }

  depends_on = [time_sleep.review_apis_ready]
}

resource "google_compute_backend_service" "review" {
  for_each = local.review_iap

  project               = var.project_id
  name                  = "${var.name_prefix}-review"
  description           = "The review desk's function, behind Identity-Aware Proxy."
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.review[each.key].id
  }

  iap {
    enabled = true
  }

  log_config {
    enable      = true
    sample_rate = 1
  }

  lifecycle {
    precondition {
      condition     = var.review_domain != "" && var.review_group != ""
      error_message = "review_iap_enabled needs review_domain (the page's host name) and review_group (who may review)."
    }
  }
}

# Who may open the page and decide: the members of review_group.
resource "google_iap_web_backend_service_iam_member" "review_accessors" {
  for_each = local.review_iap

  project             = var.project_id
  web_backend_service = google_compute_backend_service.review[each.key].name
  role                = "roles/iap.httpsResourceAccessor"
  member              = "group:${var.review_group}"
}

# IAP calls the function as its service agent; nothing else may invoke it.
resource "google_cloud_run_service_iam_member" "review_invoker" {
  for_each = local.review_iap

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.functions["review"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"

  depends_on = [time_sleep.review_apis_ready]
}

resource "google_compute_url_map" "review" {
  for_each = local.review_iap

  project         = var.project_id
  name            = "${var.name_prefix}-review"
  default_service = google_compute_backend_service.review[each.key].id
}

resource "google_compute_managed_ssl_certificate" "review" {
  for_each = local.review_iap

  project = var.project_id
  name    = "${var.name_prefix}-review"

  managed {
    domains = [each.value]
  }

  depends_on = [time_sleep.review_apis_ready]
}

# TLS 1.2 or newer with the MODERN cipher profile.
resource "google_compute_ssl_policy" "review" {
  for_each = local.review_iap

  project         = var.project_id
  name            = "${var.name_prefix}-review"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"

  depends_on = [time_sleep.review_apis_ready]
}

resource "google_compute_target_https_proxy" "review" {
  for_each = local.review_iap

  project          = var.project_id
  name             = "${var.name_prefix}-review"
  url_map          = google_compute_url_map.review[each.key].id
  ssl_certificates = [google_compute_managed_ssl_certificate.review[each.key].id]
  ssl_policy       = google_compute_ssl_policy.review[each.key].id
}

resource "google_compute_global_address" "review" {
  for_each = local.review_iap

  project = var.project_id
  name    = "${var.name_prefix}-review"

  depends_on = [time_sleep.review_apis_ready]
}

resource "google_compute_global_forwarding_rule" "review" {
  for_each = local.review_iap

  project               = var.project_id
  name                  = "${var.name_prefix}-review"
  target                = google_compute_target_https_proxy.review[each.key].id
  ip_address            = google_compute_global_address.review[each.key].id
  port_range            = "443"
  ip_protocol           = "TCP"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  labels                = local.labels
}
