"""The review desk's Terraform (terraform/review.tf): the review function is
private, and the optional HTTPS load balancer with Identity-Aware Proxy in
front of it is wired end to end and exists only when review_iap_enabled.

Read with python-hcl2 like tests/deploy/test_terraform.py (no terraform
binary); checkov scans the same files in test_checkov.py.
"""

from __future__ import annotations

import itertools
import re

import pytest

from tests.deploy.conftest import TERRAFORM, Terraform, block, dependency_graph, depends_on

SWITCH = "${local.review_iap}"
IAP_RESOURCES = {
    ("google_compute_region_network_endpoint_group", "review"),
    ("google_compute_backend_service", "review"),
    ("google_iap_web_backend_service_iam_member", "review_accessors"),
    ("google_cloud_run_service_iam_member", "review_invoker"),
    ("google_compute_url_map", "review"),
    ("google_compute_managed_ssl_certificate", "review"),
    ("google_compute_ssl_policy", "review"),
    ("google_compute_target_https_proxy", "review"),
    ("google_compute_global_address", "review"),
    ("google_compute_global_forwarding_rule", "review"),
}
IAP_AGENT = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"


def ref(kind: str, attr: str = "id") -> str:
    return f"${{{kind}.review[each.key].{attr}}}"


@pytest.fixture(scope="module")
def review(tf: Terraform) -> dict:
    return tf.instances("google_cloudfunctions2_function", "functions")["review"]


def test_one_switch_off_by_default_gates_every_iap_resource(tf: Terraform):
    switch = tf.variables["review_iap_enabled"]
    assert switch["type"] == "bool" and switch["default"] is False
    assert tf.locals["review_iap"] == "${var.review_iap_enabled ? {desk = var.review_domain} : {}}"
    for key in IAP_RESOURCES:
        body = tf.resource(*key)
        assert body.get("for_each") == SWITCH, f"{key} is not gated by review_iap_enabled"
        assert "count" not in body
    services = tf.resource("google_project_service", "review_iap")
    assert services["for_each"].startswith("${var.review_iap_enabled ? toset(")
    assert "compute.googleapis.com" in services["for_each"] and "iap.googleapis.com" in services["for_each"]
    # Every resource of review.tf that is not the function's URL-signing
    # grant belongs to the IAP path (the function is functions.tf's).
    text = (TERRAFORM / "review.tf").read_text()
    declared = set(re.findall(r'^resource "(\w+)" "(\w+)"', text, re.MULTILINE))
    assert tf.resource("time_sleep", "review_apis_ready")["for_each"] == SWITCH
    always = {
        ("time_sleep", "review_apis_ready"),  # gated too, but not an IAP resource itself
        ("google_service_account_iam_member", "review_signs_urls"),
        ("google_project_service", "review_iap"),
    }
    assert declared == IAP_RESOURCES | always


def test_domain_and_group_are_variables_required_when_on(tf: Terraform):
    for name in ("review_domain", "review_group"):
        variable = tf.variables[name]
        assert variable["default"] == "" and variable["type"] == "string"
        assert variable["description"].strip() and variable["validation"]
    backend = tf.resource("google_compute_backend_service", "review")
    condition = block(block(backend, "lifecycle"), "precondition")["condition"]
    assert 'var.review_domain != ""' in condition and 'var.review_group != ""' in condition
    certificate = tf.resource("google_compute_managed_ssl_certificate", "review")
    assert block(certificate, "managed")["domains"] == ["${each.value}"]  # local.review_iap's value: the domain


def test_the_function_is_private_and_only_iap_invokes_it(tf: Terraform, review: dict):
    service = block(review, "service_config")
    assert service["ingress_settings"] == "ALLOW_INTERNAL_AND_GCLB"
    assert block(review, "build_config")["entry_point"] == "review"
    invokers = {
        name: body
        for name, body in tf.of_type("google_cloud_run_service_iam_member").items()
        if body["service"] == '${google_cloudfunctions2_function.functions["review"].service_config[0].service}'
    }
    assert set(invokers) == {"review_invoker"}
    assert invokers["review_invoker"]["role"] == "roles/run.invoker"
    assert invokers["review_invoker"]["member"] == IAP_AGENT
    for (kind, name), body in tf.resources.items():
        members = [body.get("member", ""), *body.get("members", [])]
        if "review" in name:
            assert not {"allUsers", "allAuthenticatedUsers"} & set(members), f"{kind}.{name} is public"


def test_the_load_balancer_chain_reaches_the_function_through_iap(tf: Terraform, review: dict):
    neg = tf.resource("google_compute_region_network_endpoint_group", "review")
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert block(neg, "cloud_function")["function"] == "${local.review_function_name}"
    assert tf.locals["review_function_name"] == "${var.name_prefix}-review"
    assert review["name"] == "${var.name_prefix}-review"  # the same name: the group names the function

    backend = tf.resource("google_compute_backend_service", "review")
    assert block(backend, "backend")["group"] == ref("google_compute_region_network_endpoint_group")
    assert block(backend, "iap")["enabled"] is True
    assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED" and backend["protocol"] == "HTTPS"
    assert block(backend, "log_config")["enable"] is True

    assert tf.resource("google_compute_url_map", "review")["default_service"] == ref("google_compute_backend_service")
    proxy = tf.resource("google_compute_target_https_proxy", "review")
    assert proxy["url_map"] == ref("google_compute_url_map")
    assert proxy["ssl_certificates"] == [ref("google_compute_managed_ssl_certificate")]
    assert proxy["ssl_policy"] == ref("google_compute_ssl_policy")
    policy = tf.resource("google_compute_ssl_policy", "review")
    assert (policy["profile"], policy["min_tls_version"]) == ("MODERN", "TLS_1_2")

    rule = tf.resource("google_compute_global_forwarding_rule", "review")
    assert rule["target"] == ref("google_compute_target_https_proxy")
    assert rule["ip_address"] == ref("google_compute_global_address")
    assert rule["port_range"] == "443" and rule["load_balancing_scheme"] == "EXTERNAL_MANAGED"

    graph = dependency_graph(tf)
    chain = [
        "google_compute_global_forwarding_rule.review",
        "google_compute_target_https_proxy.review",
        "google_compute_url_map.review",
        "google_compute_backend_service.review",
        "google_compute_region_network_endpoint_group.review",
    ]
    for later, earlier in itertools.pairwise(chain):
        assert depends_on(graph, later, earlier), f"{later} does not depend on {earlier}"
    for kind, name in IAP_RESOURCES:
        # compute and iap are enabled only with IAP: everything of the path waits for them
        assert depends_on(graph, f"{kind}.{name}", "time_sleep.review_apis_ready"), f"{kind}.{name}"


def test_the_allowed_group_gets_the_iap_accessor_role(tf: Terraform):
    grant = tf.resource("google_iap_web_backend_service_iam_member", "review_accessors")
    assert grant["role"] == "roles/iap.httpsResourceAccessor"
    assert grant["member"] == "group:${var.review_group}"
    assert grant["web_backend_service"] == ref("google_compute_backend_service", "name")


def test_the_function_verifies_iap_headers_for_this_backend(tf: Terraform):
    """IAP_AUDIENCE (the setting the function checks the signed header's
    audience against) is the backend service's audience, and empty without IAP."""
    environment = tf.locals["function_extra_environment"]["review"]
    assert environment == {"IAP_AUDIENCE": "${local.review_iap_audience}", "REVIEW_IMAGE_URLS": "signed"}
    audience = tf.locals["review_iap_audience"]
    assert "google_compute_backend_service.review" in audience and "generated_id" in audience
    assert "/projects/${data.google_project.this.number}/global/backendServices/" in audience
    assert audience.startswith('${join("", [')  # no backend (IAP off): ""
    graph = dependency_graph(tf)
    assert depends_on(graph, "google_cloudfunctions2_function.functions", "google_compute_backend_service.review")
    assert not depends_on(graph, "google_compute_backend_service.review", "google_cloudfunctions2_function.functions"), "a cycle"


def test_outputs_name_the_address_and_the_page(tf: Terraform):
    for name in ("review_url", "review_address", "review_page"):
        assert tf.outputs[name]["description"].strip()
    assert "google_compute_global_address.review" in tf.outputs["review_address"]["value"]
