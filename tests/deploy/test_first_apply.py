"""A dry run of a first apply on a fresh project, as close to real as this
machine allows (no terraform binary, no provider): the order Terraform
would create things in, read from the references and depends_on of the
parsed configuration; the waits Google documents; the units of every alert;
the cleanup and versioning policies; the variables' ranges against Cloud
Run's documented limits. Each test names the finding of issue 21 it guards.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.conftest import TERRAFORM, Terraform, block, dependency_graph, depends_on, local_value, parse_hcl

APIS_READY = "time_sleep.apis_ready"
FUNCTIONS = ("classify", "sweep", "predict")


@pytest.fixture(scope="module")
def graph(tf: Terraform) -> dict[str, set[str]]:
    return dependency_graph(tf)


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


# --------------------------------------------------------------------------
# Apply failures: ordering


def test_time_provider_is_required_with_a_version_constraint():
    providers = parse_hcl(TERRAFORM / "versions.tf")["terraform"][0]["required_providers"][0]
    assert providers["time"]["source"] == "hashicorp/time"
    assert re.fullmatch(r">= 0\.\d+, < 1\.0", providers["time"]["version"])


def test_apis_the_provider_itself_needs_are_listed(tf: Terraform):
    """Cloud Resource Manager (project IAM, reading the project) and Service
    Usage (enabling services) are kept on by Terraform; cloudbuild.yaml and
    docs/deploy.md enable them before the first apply."""
    services = set(tf.locals["services"])
    assert {"cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com", "iam.googleapis.com"} <= services
    guide = (TERRAFORM.parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "gcloud services enable cloudresourcemanager.googleapis.com serviceusage.googleapis.com" in guide


def test_every_resource_waits_for_the_apis(tf: Terraform, graph):
    """Nothing races the API enablement: every resource and data source is
    applied after the wait that follows it, which follows the enablement.
    data.google_project reads the project through Cloud Resource Manager, a
    prerequisite enabled before Terraform runs."""
    assert graph[APIS_READY] == {"google_project_service.services"}
    assert _seconds(tf.resource("time_sleep", "apis_ready")["create_duration"]) >= 60
    exempt = {"google_project_service.services", APIS_READY, "data.google_project.this"}
    late = [address for address in graph if address not in exempt and not depends_on(graph, address, APIS_READY)]
    assert not late, f"applied without waiting for the APIs: {late}"


def test_service_accounts_and_custom_role_wait_for_the_iam_api(graph):
    for address in ("google_service_account.accounts", "google_project_iam_custom_role.incoming_consumer"):
        assert APIS_READY in graph[address], address


def test_functions_build_as_a_granted_build_account(tf: Terraform, graph):
    """Projects created since mid-2024 give Cloud Build no default account
    with these rights: each function names the build account, which may read
    the source archive, write logs and push to the image repository, and
    each function is created after those grants."""
    assert tf.locals["function_build"] == {
        "service_account": '${google_service_account.accounts["build"].id}',
        "docker_repository": "${google_artifact_registry_repository.images.id}",
    }
    build = tf.locals["role_table"]["build"]
    assert local_value(tf, build["buckets"]) == {
        "models": ["roles/storage.objectViewer"]
    }  # the archive lives in the models bucket
    assert tf.locals["function_source"]["bucket"] == '${google_storage_bucket.buckets["models"].name}'
    assert build["project"] == ["roles/logging.logWriter"]
    writer = tf.resource("google_artifact_registry_repository_iam_member", "build_writer")
    assert writer["role"] == "roles/artifactregistry.writer"
    assert writer["member"] == 'serviceAccount:${google_service_account.accounts["build"].email}'
    functions = tf.instances("google_cloudfunctions2_function", "functions")
    for name in FUNCTIONS:
        config = block(functions[name], "build_config")
        assert config["service_account"] == "${local.function_build.service_account}", name
        assert config["docker_repository"] == "${local.function_build.docker_repository}", name
        address = "google_cloudfunctions2_function.functions"  # one resource: every instance waits
        for grant in (
            "google_storage_bucket_iam_member.grants",
            "google_project_iam_member.grants",
            "google_artifact_registry_repository_iam_member.build_writer",
        ):
            assert depends_on(graph, address, grant), f"{name} may build before {grant}"


def test_trigger_waits_for_the_agents_grants_to_propagate(tf: Terraform, graph):
    """A first Eventarc trigger fails while its agents' permissions
    propagate: classify waits (time_sleep.eventarc_iam, at least the two
    minutes IAM documents) after the Eventarc and Cloud Storage agents' and
    the trigger account's grants."""
    wait = tf.resource("time_sleep", "eventarc_iam")
    assert _seconds(wait["create_duration"]) >= 120
    assert graph["time_sleep.eventarc_iam"] == {
        "google_project_iam_member.gcs_agent_publisher",
        "google_project_iam_member.eventarc_agent",
        "google_project_iam_member.grants",
    }
    agent = tf.resource("google_project_iam_member", "eventarc_agent")
    assert agent["role"] == "roles/eventarc.serviceAgent"
    assert agent["member"].endswith("@gcp-sa-eventarc.iam.gserviceaccount.com")
    assert "roles/eventarc.eventReceiver" in tf.locals["role_table"]["classify"]["project"]
    assert "time_sleep.eventarc_iam" in graph["google_cloudfunctions2_function.functions"]


def test_the_error_alert_waits_for_its_metric(tf: Terraform, graph):
    """An alert on a log-based metric created moments before fails with
    "Cannot find metric(s)" for up to ten minutes."""
    wait = tf.resource("time_sleep", "log_metrics_ready")
    assert _seconds(wait["create_duration"]) >= 600
    assert "google_logging_metric.function_errors" in graph["time_sleep.log_metrics_ready"]
    assert "time_sleep.log_metrics_ready" in graph["google_monitoring_alert_policy.error_rate"]
    for name, body in tf.of_type("google_monitoring_alert_policy").items():
        if "logging.googleapis.com/user/" in str(body):
            assert depends_on(graph, f"google_monitoring_alert_policy.{name}", "time_sleep.log_metrics_ready"), name


# --------------------------------------------------------------------------
# Wrong behaviour: units, plans, policies, validations

# metric -> (kind, what one point counts)
METRICS = {
    "logging.googleapis.com/user/": ("DELTA", "log entries"),
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age": ("GAUGE", "seconds"),
    "pubsub.googleapis.com/subscription/num_undelivered_messages": ("GAUGE", "messages"),
}
# alert -> the unit its threshold is written in
THRESHOLD_UNITS = {
    "error_rate": "log entries per 60s",
    "backlog_age": "seconds",
    "dead_letters": "messages",
}


def _aligned_unit(kind: str, counts: str, aligner: str, period: str) -> str:
    """What an aligned point means (Cloud Monitoring's aligners): a rate is
    per second; a delta or sum of a DELTA metric is per alignment period;
    a max or mean of a gauge keeps the gauge's unit."""
    if aligner == "ALIGN_RATE":
        return f"{counts} per 1s"
    if kind == "DELTA" and aligner in ("ALIGN_DELTA", "ALIGN_SUM"):
        return f"{counts} per {period}"
    if kind == "GAUGE" and aligner in ("ALIGN_MAX", "ALIGN_MIN", "ALIGN_MEAN"):
        return counts
    raise AssertionError(f"no unit known for {aligner} on a {kind} metric")


def _resolve(tf: Terraform, value: str) -> str:
    match = re.fullmatch(r"\$\{local\.(\w+)\.(\w+)\}", value)
    return tf.locals[match.group(1)][match.group(2)] if match else value


def test_every_alert_compares_in_the_unit_of_its_threshold(tf: Terraform):
    alerts = tf.of_type("google_monitoring_alert_policy")
    assert set(alerts) == set(THRESHOLD_UNITS)
    for name, body in alerts.items():
        condition = block(block(body, "conditions"), "condition_threshold")
        metric = next(m for m in METRICS if m in condition["filter"])
        aggregation = block(condition, "aggregations")
        aligner = _resolve(tf, aggregation["per_series_aligner"])
        period = _resolve(tf, aggregation["alignment_period"])
        assert _aligned_unit(*METRICS[metric], aligner, period) == THRESHOLD_UNITS[name], name
    # The error threshold variable is per minute, as the alert compares.
    assert "per minute" in tf.variables["error_alert_per_minute"]["description"]
    assert "per minute" in block(alerts["error_rate"], "conditions")["display_name"]
    code = [line for line in (TERRAFORM / "monitoring.tf").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "ALIGN_RATE" in line], "a rate per second against per-minute figures"


def test_error_metric_is_a_delta_count(tf: Terraform):
    descriptor = block(tf.resource("google_logging_metric", "function_errors"), "metric_descriptor")
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "INT64")


def test_dashboard_plans_clean(tf: Terraform):
    """Zero positions are dropped by the API, so none is written: the tiles
    are laid out two a row, and a position enters a tile only where it is
    not 0. The layout, computed here as Terraform would, fits the 12
    columns without overlaps. The error chart is per minute."""
    dashboard = tf.resource("google_monitoring_dashboard", "main")["dashboard_json"]
    assert "tiles = local.dashboard_tiles" in dashboard and "columns = 12" in dashboard
    tiles = tf.locals["dashboard_tiles"]
    assert "for i, chart in local.dashboard_charts" in tiles
    assert "i % 2 == 0 ? {} : {xPos = local.dashboard_tile_width}" in tiles
    assert "i < 2 ? {} : {yPos = floor(i / 2) * local.dashboard_tile_height}" in tiles
    assert not re.search(r"(xPos|yPos) = 0\b", tiles)
    width, height = tf.locals["dashboard_tile_width"], tf.locals["dashboard_tile_height"]
    charts = tf.locals["dashboard_charts"]
    assert len(charts) == 4
    cells: set[tuple[int, int]] = set()
    for i, chart in enumerate(charts):
        x, y = (0 if i % 2 == 0 else width), (0 if i < 2 else (i // 2) * height)
        assert x + width <= 12
        mine = {(x + a, y + b) for a in range(width) for b in range(height)}
        assert not mine & cells, f"{chart['title']} overlaps another tile"
        cells |= mine
    errors = next(c for c in charts if "errors" in c["title"].lower())
    assert "per minute" in errors["title"]
    assert errors["aggregation"]["perSeriesAligner"] == "${local.per_minute_count.per_series_aligner}"
    assert errors["aggregation"]["alignmentPeriod"] == "${local.per_minute_count.alignment_period}"


def test_artifact_registry_cleanup_deletes_beside_what_it_keeps(tf: Terraform):
    """A keep policy alone deletes nothing: a delete policy matches old
    versions, the keep policy spares the most recent of each image."""
    repo = tf.resource("google_artifact_registry_repository", "images")
    assert repo["cleanup_policy_dry_run"] is False
    policies = {p["id"]: p for p in repo["cleanup_policies"]}
    assert {p["action"] for p in policies.values()} == {"KEEP", "DELETE"}
    keep = block(policies["keep-recent"], "most_recent_versions")
    assert keep["keep_count"] >= 2  # a roll-back target stays
    condition = block(policies["delete-old"], "condition")
    assert condition["tag_state"] == "ANY"
    assert condition["older_than"] == "${30 * 24 * 3600}s"


def _noncurrent_kept(num_newer_versions: int, versions: int = 50) -> int:
    """Cloud Storage's rule: a noncurrent version is deleted when at least
    num_newer_versions versions, the live one included, are newer. Of
    ``versions`` noncurrent versions (the i-th newest has i newer ones),
    how many stay."""
    return sum(1 for i in range(1, versions + 1) if i < num_newer_versions)


def test_models_bucket_keeps_as_many_versions_as_its_variable_says(tf: Terraform):
    rule = next(r for r in tf.locals["bucket_settings"]["models"]["rules"] if "num_newer_versions" in r["condition"])
    assert rule["condition"]["num_newer_versions"] == "${var.model_noncurrent_versions + 1}"
    assert rule["condition"]["with_state"] == "ARCHIVED"
    assert rule["action"] == {"type": "Delete"}
    default = tf.variables["model_noncurrent_versions"]["default"]
    assert _noncurrent_kept(default + 1) == default
    assert _noncurrent_kept(default) == default - 1  # the old rule: one fewer than asked


# Cloud Run jobs: memory allowed at each vCPU count, GiB
# (cloud.google.com/run/docs/configuring/jobs/memory-limits, "Required
# memory when setting a CPU value"; 32 GiB at most).
CLOUD_RUN_JOB_MEMORY_GIB = {"1": (0.5, 4), "2": (0.5, 8), "4": (2, 16), "6": (4, 24), "8": (4, 32)}


def _allowed_strings(condition: str) -> list[str]:
    match = re.search(r"contains\(\[([^\]]*)\]", condition)
    assert match, condition
    return re.findall(r'"([^"]*)"', match.group(1))


def test_training_resources_match_cloud_runs_limits(tf: Terraform):
    table = {cpu: (limits["min"], limits["max"]) for cpu, limits in tf.locals["training_memory_limits_gib"].items()}
    assert table == CLOUD_RUN_JOB_MEMORY_GIB
    cpus = _allowed_strings(tf.variables["training_cpu"]["validation"][0]["condition"])
    assert set(cpus) == set(CLOUD_RUN_JOB_MEMORY_GIB)
    memory = tf.variables["training_memory"]["validation"][0]["condition"]
    assert ">= 1" in memory and "<= 32" in memory
    # The pair is checked together before the job is created.
    precondition = block(block(tf.resource("google_cloud_run_v2_job", "training"), "lifecycle"), "precondition")
    for bound in (
        "local.training_memory_limits_gib[var.training_cpu].min",
        "local.training_memory_limits_gib[var.training_cpu].max",
    ):
        assert bound in precondition["condition"]
    assert tf.locals["training_memory_gib"] == '${tonumber(trimsuffix(var.training_memory, "Gi"))}'
    # The defaults are a pair Cloud Run accepts.
    low, high = CLOUD_RUN_JOB_MEMORY_GIB[tf.variables["training_cpu"]["default"]]
    assert low <= int(tf.variables["training_memory"]["default"].removesuffix("Gi")) <= high


def _mebibytes(size: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", size)
    assert match, size
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def test_function_sizes_fit_one_vcpu(tf: Terraform):
    """Every function runs on available_cpu 1, which Cloud Run pairs with
    128 MiB to 4 GiB (the same table, 1 vCPU row)."""
    functions = tf.instances("google_cloudfunctions2_function", "functions")
    for name in FUNCTIONS:
        assert block(functions[name], "service_config")["available_cpu"] == "1"
    for size in _allowed_strings(tf.variables["function_memory"]["validation"][0]["condition"]):
        assert 128 <= _mebibytes(size) <= 4 * 1024, size


def test_sweep_deadline_fits_cloud_scheduler(tf: Terraform):
    """The scheduler's attempt deadline is the budget plus 120 s, and Cloud
    Scheduler allows 1800 s for an HTTP target at most."""
    condition = tf.variables["sweep_budget_seconds"]["validation"][0]["condition"]
    high = int(re.search(r"<= (\d+)", condition).group(1))
    assert high + 120 <= 1800
    job = tf.resource("google_cloud_scheduler_job", "sweep")
    assert job["attempt_deadline"] == "${var.sweep_budget_seconds + 120}s"
