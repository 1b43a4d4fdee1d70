"""The Terraform configuration: it parses, and its wiring holds.

No terraform binary or provider is available here, so these tests read the
configuration with python-hcl2 and check the contracts between it and the
code: buckets, trigger, entry points, runtime, environment, scheduler, IAM.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.deploy.conftest import TERRAFORM, Terraform, block, entry_points, local_value, parse_hcl

TF_FILES = sorted(TERRAFORM.glob("*.tf"))
ENTRY_DECORATORS = {"functions_framework.http", "functions_framework.cloud_event"}
LITERT_RUNTIMES = {"python311", "python312", "python313"}  # ai-edge-litert 2.3 wheels: CPython 3.11-3.13


# Read by the Functions Framework, not by shared/settings.py: gunicorn's
# thread count (functions_framework/_http/gunicorn.py, THREADS).
FRAMEWORK_ENV = {"THREADS"}


def ref(kind: str, name: str, attr: str = "name") -> str:
    return f"${{{kind}.{name}.{attr}}}"


def bucket_ref(name: str) -> str:
    """The reference to a bucket of main.tf's bucket table, by its key."""
    return f'${{google_storage_bucket.buckets["{name}"].name}}'


def account(name: str, attr: str = "email") -> str:
    """The reference to a service account of iam.tf's table."""
    return f'${{google_service_account.accounts["{name}"].{attr}}}'


def test_layout_is_the_terraform_google_modules_one():
    names = {p.name for p in TERRAFORM.iterdir()}
    for required in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "terraform.tfvars.example", "backend.tf.example"):
        assert required in names, f"terraform/{required} is missing"
    assert len(TF_FILES) >= 4


@pytest.mark.parametrize(
    "path", [*TF_FILES, TERRAFORM / "backend.tf.example", TERRAFORM / "terraform.tfvars.example"], ids=lambda p: p.name
)
def test_every_file_parses(path: Path):
    assert isinstance(parse_hcl(path), dict)


def test_formatting_is_terraform_fmt_style():
    """Two-space indentation, no tabs, no trailing blanks (terraform fmt's basics)."""
    for path in [*TF_FILES, TERRAFORM / "terraform.tfvars.example", TERRAFORM / "backend.tf.example"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.name}:{number}"
            assert "\t" not in line, f"tab at {where}"
            assert line == line.rstrip(), f"trailing blank at {where}"
            indent = len(line) - len(line.lstrip(" "))
            assert indent % 2 == 0, f"odd indentation at {where}"


def test_backend_is_gcs_and_documented():
    backend = parse_hcl(TERRAFORM / "backend.tf.example")["terraform"][0]["backend"][0]
    assert "gcs" in backend
    assert "backend.tf.example" in (TERRAFORM / "versions.tf").read_text()


def test_every_variable_is_described_and_validated(tf: Terraform):
    assert tf.variables
    for name, body in tf.variables.items():
        assert body.get("description", "").strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
        assert body.get("validation"), f"variable {name} has no validation"


def test_every_output_is_described(tf: Terraform):
    for wanted in ("incoming_bucket", "processed_bucket", "models_bucket", "training_data_bucket", "predict_url", "sweep_url"):
        assert wanted in tf.outputs
    for name, body in tf.outputs.items():
        assert body.get("description", "").strip(), f"output {name} has no description"


def test_tfvars_example_names_declared_variables_and_all_required_ones(tf: Terraform):
    example = parse_hcl(TERRAFORM / "terraform.tfvars.example")
    assert set(example) <= set(tf.variables), set(example) - set(tf.variables)
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required <= set(example), required - set(example)


def test_required_apis_are_enabled(tf: Terraform):
    services = set(tf.locals["services"])
    for api in (
        "cloudfunctions",
        "run",
        "eventarc",
        "cloudscheduler",
        "firestore",
        "pubsub",
        "storage",
        "artifactregistry",
        "cloudbuild",
    ):
        assert f"{api}.googleapis.com" in services


# --------------------------------------------------------------------------
# buckets and Firestore

BUCKETS = ("incoming", "processed", "models", "training_data", "dataflow")


@pytest.fixture(scope="module")
def buckets(tf: Terraform) -> dict:
    """The one bucket resource, over local.bucket_names (each.value: the name)."""
    assert set(tf.of_type("google_storage_bucket")) == {"buckets"}
    body = tf.resource("google_storage_bucket", "buckets")
    assert body["for_each"] == "${local.bucket_names}"
    return body


def _dynamic(body: dict, name: str) -> dict:
    [found] = [d[name] for d in body.get("dynamic", []) if name in d]
    return found


def test_buckets_are_private_and_uniform(tf: Terraform, buckets: dict):
    assert set(tf.locals["default_bucket_names"]) == set(tf.locals["bucket_settings"]) == set(BUCKETS)
    assert buckets["uniform_bucket_level_access"] is True
    assert buckets["public_access_prevention"] == "enforced"
    assert buckets["name"] == "${each.value}"  # local.bucket_names[each.key]


def test_bucket_names_differ(tf: Terraform):
    names = parse_hcl(TERRAFORM / "main.tf")["locals"][0]["default_bucket_names"]
    assert set(names) == set(BUCKETS)
    assert len(set(names.values())) == len(BUCKETS)
    assert names["incoming"] != names["processed"]
    # Overrides (var.bucket_names) cannot make two buckets one: the apply stops.
    classify = tf.instances("google_cloudfunctions2_function", "functions")["classify"]
    precondition = block(block(classify, "lifecycle"), "precondition")
    assert precondition["condition"] == "${length(distinct(values(local.bucket_names))) == length(local.bucket_names)}"


def test_models_bucket_is_versioned(tf: Terraform, buckets: dict):
    versioned = {name for name, settings in tf.locals["bucket_settings"].items() if settings["versioned"] is True}
    assert versioned == {"models", "processed"}
    versioning = _dynamic(buckets, "versioning")
    assert versioning["for_each"] == "${local.bucket_settings[each.key].versioned ? [true] : []}"
    assert block(versioning, "content") == {"enabled": "${versioning.value}"}


def test_rejected_and_reports_age_out_configurably(tf: Terraform, buckets: dict):
    """One table of expiring prefixes, one shared rule per bucket."""
    assert tf.locals["prefix_retention_days"] == {
        "rejected/": "${var.rejected_retention_days}",
        "reports/": "${var.reports_retention_days}",
    }
    assert tf.locals["expiring_prefixes"] == {"processed": ["rejected/", "reports/"], "models": ["reports/"]}
    assert "if local.prefix_retention_days[prefix] > 0" in tf.locals["expiry_rules"]  # 0 keeps them
    # Every bucket's rules: its own (bucket_settings), then one Delete rule
    # an expiring prefix of it, written as the provider's blocks.
    rules = _dynamic(buckets, "lifecycle_rule")
    assert "local.bucket_settings[each.key].rules" in rules["for_each"]
    assert "for prefix, days in lookup(local.expiry_rules, each.key, {})" in rules["for_each"]
    assert re.search(r"condition = \{\s*age = days,? matches_prefix = \[prefix\],?\s*\}", rules["for_each"]), rules["for_each"]
    content = block(rules, "content")
    condition = block(content, "condition")
    assert condition["age"] == "${try(lifecycle_rule.value.condition.age, null)}"
    assert condition["matches_prefix"] == "${try(lifecycle_rule.value.condition.matches_prefix, null)}"
    assert block(content, "action")["type"] == "${lifecycle_rule.value.action.type}"
    assert '{type = "Delete"}' in rules["for_each"].replace(" ", "").replace("=", " = ")


def test_firestore_is_native_with_an_index(tf: Terraform):
    db = tf.resource("google_firestore_database", "main")
    assert db["type"] == "FIRESTORE_NATIVE"
    assert db["name"] == "${var.firestore_database}"
    indexes = tf.of_type("google_firestore_index")
    assert indexes
    for index in indexes.values():
        assert index["database"] == ref("google_firestore_database", "main")


# --------------------------------------------------------------------------
# functions


@pytest.fixture(scope="module")
def functions(tf: Terraform) -> dict[str, dict]:
    """The functions: one resource over functions.tf's table, by key."""
    assert set(tf.of_type("google_cloudfunctions2_function")) == {"functions"}
    found = tf.instances("google_cloudfunctions2_function", "functions")
    assert set(found) == {"classify", "predict", "sweep", "review"}
    return found


def test_entry_points_exist_in_functions_main(functions):
    code = entry_points()
    deployed = {}
    for name, body in functions.items():
        entry = block(body, "build_config")["entry_point"]
        assert entry in code, f"{name}: entry point {entry} is not a function of functions/main.py"
        assert ENTRY_DECORATORS & set(code[entry]), f"{name}: {entry} is not a functions_framework entry point"
        deployed[name] = entry
    assert deployed == {"classify": "classify_upload", "predict": "predict", "sweep": "sweep", "review": "review"}
    # The event function is a CloudEvent function, the others HTTP.
    assert "functions_framework.cloud_event" in code["classify_upload"]
    assert "functions_framework.http" in code["predict"]
    assert "functions_framework.http" in code["sweep"]
    assert "functions_framework.http" in code["review"]


def test_runtime_is_one_litert_supports(tf: Terraform, functions):
    runtime_var = tf.variables["functions_runtime"]
    assert runtime_var["default"] in LITERT_RUNTIMES
    condition = runtime_var["validation"][0]["condition"]
    assert set(re.findall(r"python3\d+", condition)) == LITERT_RUNTIMES
    for name, body in functions.items():
        runtime = block(body, "build_config")["runtime"]
        assert runtime == "${var.functions_runtime}" or runtime in LITERT_RUNTIMES, name


def test_all_functions_share_one_source_archive(tf: Terraform, functions):
    assert tf.locals["function_source"]["object"] == "${var.function_source_object}"
    for name, body in functions.items():
        storage = block(block(block(body, "build_config"), "source"), "storage_source")
        assert storage == {"bucket": "${local.function_source.bucket}", "object": "${local.function_source.object}"}, name


def _environment(tf: Terraform, body: dict) -> dict[str, str]:
    """A function's environment: the shared one merged with its extras
    (functions.tf's locals), plus its secret variables."""
    service = block(body, "service_config")
    match = re.fullmatch(
        r'\$\{merge\(local\.function_environment, local\.function_extra_environment\["(\w+)"\]\)\}',
        service["environment_variables"],
    )
    assert match, service["environment_variables"]
    env = {**tf.locals["function_environment"], **tf.locals["function_extra_environment"][match.group(1)]}
    for dynamic in service.get("dynamic", []):
        secret = dynamic.get("secret_environment_variables")
        if secret:
            env[block(secret, "content")["key"]] = "<secret>"
    for secret in service.get("secret_environment_variables", []):
        env[secret["key"]] = "<secret>"
    return env


def test_environment_is_exactly_settings_the_code_reads(tf: Terraform, functions):
    known = set(Settings.ENV) | FRAMEWORK_ENV
    for name, body in functions.items():
        env = _environment(tf, body)
        assert set(env) <= known, f"{name} sets variables the code never reads: {set(env) - known}"
        assert set(Settings.REQUIRED) <= set(env), f"{name} lacks required settings: {set(Settings.REQUIRED) - set(env)}"
        assert env["INCOMING_BUCKET"] == bucket_ref("incoming")
        assert env["PROCESSED_BUCKET"] == bucket_ref("processed")
        assert env["MODELS_BUCKET"] == bucket_ref("models")
        assert env["GOOGLE_CLOUD_PROJECT"] == "${var.project_id}"


def test_one_shared_environment_merged_with_extras(tf: Terraform, functions):
    extras = tf.locals["function_extra_environment"]
    assert set(extras) == set(functions)
    for name, body in functions.items():
        env = block(body, "service_config")["environment_variables"]
        assert env == f'${{merge(local.function_environment, local.function_extra_environment["{name}"])}}'
        assert not set(extras[name]) & set(tf.locals["function_environment"]), f"{name} overrides a shared variable"


def test_api_key_comes_from_secret_manager_only(tf: Terraform, functions):
    assert "API_KEY" not in tf.locals["function_environment"]
    for name, extra in tf.locals["function_extra_environment"].items():
        assert "API_KEY" not in extra, name
    assert _environment(tf, functions["predict"])["API_KEY"] == "<secret>"


def test_predict_threads_follow_its_concurrency(tf: Terraform, functions):
    """gunicorn serves predict with as many threads as Cloud Run lets
    requests in: both from predict_concurrency, not from the framework's
    default (4 x CPUs, equal only by coincidence at 1 vCPU and 4)."""
    import functions_framework._http.gunicorn as framework

    assert 'os.environ.get("THREADS"' in Path(framework.__file__).read_text()  # the pinned framework reads it
    service = block(functions["predict"], "service_config")
    assert service["max_instance_request_concurrency"] == "${var.predict_concurrency}"
    assert _environment(tf, functions["predict"])["THREADS"] == "${tostring(var.predict_concurrency)}"
    for name in ("classify", "sweep"):
        assert block(functions[name], "service_config")["max_instance_request_concurrency"] == 1, name


def test_trigger_is_the_incoming_bucket_with_retries(functions):
    trigger = block(functions["classify"], "event_trigger")
    assert trigger["event_type"] == "google.cloud.storage.object.v1.finalized"
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert trigger["event_filters"] == [{"attribute": "bucket", "value": bucket_ref("incoming")}]
    assert trigger["service_account_email"] == account("classify")
    for name in ("predict", "sweep", "review"):
        assert "event_trigger" not in functions[name]


def test_dead_letter_topic_exists(tf: Terraform):
    topics = tf.instances("google_pubsub_topic", "dead_letters")
    assert topics["classify"]["name"] == "${var.name_prefix}-classify-dead-letter"
    subscription = tf.instances("google_pubsub_subscription", "dead_letters")["classify"]
    assert subscription["topic"] == '${google_pubsub_topic.dead_letters["classify"].id}'
    assert "dead_letter_topic" in tf.outputs and "classify_trigger" in tf.outputs


def test_sizing(functions):
    for name, body in functions.items():
        service = block(body, "service_config")
        assert service["min_instance_count"] == 0, f"{name} must scale to zero"
        assert service["service_account_email"] == account(name)
    assert block(functions["classify"], "service_config")["max_instance_request_concurrency"] == 1
    assert block(functions["classify"], "service_config")["ingress_settings"] == "ALLOW_INTERNAL_ONLY"


def test_scheduler_calls_the_sweep_with_oidc(tf: Terraform):
    jobs = tf.of_type("google_cloud_scheduler_job")
    assert set(jobs) == {"sweep"}
    target = block(jobs["sweep"], "http_target")
    uri = '${google_cloudfunctions2_function.functions["sweep"].service_config[0].uri}'
    assert target["uri"] == uri
    assert target["http_method"] == "POST"
    oidc = block(target, "oidc_token")
    assert oidc["service_account_email"] == account("scheduler")
    assert oidc["audience"] == uri
    invoker = tf.instances("google_cloud_run_service_iam_member", "invokers")["sweep"]
    assert invoker["service"] == '${google_cloudfunctions2_function.functions["sweep"].service_config[0].service}'
    assert invoker["member"] == f"serviceAccount:{account('scheduler')}"


def test_training_job_runs_the_artifact_registry_image(tf: Terraform):
    job = tf.resource("google_cloud_run_v2_job", "training")
    inner = block(block(job, "template"), "template")
    assert inner["service_account"] == account("training")
    assert block(inner, "containers")["image"] == "${local.trainer_image}"
    assert "google_artifact_registry_repository.images.repository_id" in tf.locals["trainer_image"]
    assert tf.resource("google_artifact_registry_repository", "images")["format"] == "DOCKER"


def test_monitoring(tf: Terraform):
    assert len(tf.of_type("google_logging_metric")) >= 1
    assert {"error_rate", "backlog_age", "dead_letters"} <= set(tf.of_type("google_monitoring_alert_policy"))
    assert tf.of_type("google_monitoring_dashboard")


# --------------------------------------------------------------------------
# IAM

PUBLIC = ("allUsers", "allAuthenticatedUsers")


def _members(body: dict) -> list[str]:
    members = body.get("members", [])
    return [body["member"], *members] if "member" in body else list(members)


def test_no_public_invoker_unless_the_api_key_is_set(tf: Terraform):
    public = []
    for (kind, name), body in tf.resources.items():
        if any(m in PUBLIC for m in _members(body)):
            public.append((kind, name))
            assert body.get("count") == '${var.api_key_secret_id == "" ? 0 : 1}', f"{kind}.{name} is public unconditionally"
            assert body["service"] == '${google_cloudfunctions2_function.functions["predict"].service_config[0].service}'
            assert body["role"] == "roles/run.invoker"
    assert public == [("google_cloud_run_service_iam_member", "predict_public")]
    for path in TF_FILES:  # no public grant hides in a for_each or local either
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert code.count('"allUsers"') == (1 if path.name == "functions.tf" else 0), path.name
        assert '"allAuthenticatedUsers"' not in code


# account -> {(scope, role)}: scope is a bucket resource, "project", the
# allow-listed buckets, a function, the API key secret or the image repository.
INCOMING_CONSUMER = "${google_project_iam_custom_role.incoming_consumer.id}"
EXPECTED_ROLES = {
    "classify": {
        ("bucket:incoming", INCOMING_CONSUMER),
        ("bucket:processed", "roles/storage.objectUser"),  # a re-upload replaces the older copy
        ("bucket:models", "roles/storage.objectViewer"),
        ("project", "roles/datastore.user"),
        ("project", "roles/eventarc.eventReceiver"),
        ("function:classify", "roles/run.invoker"),
        ("topic:events", "roles/pubsub.publisher"),  # completion events (events.tf)
    },
    "sweep": {
        ("bucket:incoming", INCOMING_CONSUMER),
        ("bucket:processed", "roles/storage.objectUser"),  # a re-upload replaces the older copy
        ("bucket:models", "roles/storage.objectViewer"),
        ("project", "roles/datastore.user"),
        ("topic:events", "roles/pubsub.publisher"),  # republishes pending completion events
    },
    "predict": {
        ("bucket:models", "roles/storage.objectViewer"),
        ("bucket:allow-listed", "roles/storage.objectViewer"),
        ("project", "roles/datastore.viewer"),
        ("secret:api_key", "roles/secretmanager.secretAccessor"),
    },
    "training": {
        ("bucket:training_data", "roles/storage.objectViewer"),
        ("bucket:models", "roles/storage.objectUser"),
    },
    "scheduler": {
        ("function:sweep", "roles/run.invoker"),
    },
    "review": {
        ("bucket:processed", "roles/storage.objectUser"),  # a decision moves the file within processed
        ("bucket:models", "roles/storage.objectViewer"),
        ("project", "roles/datastore.user"),
        ("account:review", "roles/iam.serviceAccountTokenCreator"),  # signs its V4 image URLs as itself
        ("topic:events", "roles/pubsub.publisher"),  # each decision's completion event
    },
    "build": {
        ("bucket:models", "roles/storage.objectViewer"),
        ("project", "roles/logging.logWriter"),
        ("repository:images", "roles/artifactregistry.writer"),
    },
    "webhook": set(),  # only the identity of the events webhook's OIDC token
    "dataflow": {
        ("bucket:incoming", INCOMING_CONSUMER),
        ("bucket:processed", "roles/storage.objectUser"),
        ("bucket:models", "roles/storage.objectViewer"),
        ("bucket:dataflow", "roles/storage.objectAdmin"),
        ("project", "roles/datastore.user"),
        ("project", "roles/dataflow.worker"),
        ("repository:images", "roles/artifactregistry.reader"),
    },
}
ACCOUNT = re.compile(r'serviceAccount:\$\{google_service_account\.accounts\["(\w+)"\]\.email\}')


def _scope(kind: str, body: dict) -> str:
    if kind == "google_storage_bucket_iam_member":
        assert body["bucket"] == "${each.value}" and body["for_each"] == "${toset(var.predict_allowed_buckets)}"
        return "bucket:allow-listed"
    if kind == "google_cloud_run_service_iam_member":
        match = re.fullmatch(
            r'\$\{google_cloudfunctions2_function\.functions\["(\w+)"\]\.service_config\[0\]\.service\}', body["service"]
        )
        assert match, body["service"]
        return f"function:{match.group(1)}"
    if kind == "google_service_account_iam_member":
        match = re.fullmatch(r'\$\{google_service_account\.accounts\["(\w+)"\]\.name\}', body["service_account_id"])
        assert match, body["service_account_id"]
        return f"account:{match.group(1)}"
    if kind == "google_secret_manager_secret_iam_member":
        assert body["secret_id"] == "${var.api_key_secret_id}"
        return "secret:api_key"
    if kind == "google_artifact_registry_repository_iam_member":
        assert body["repository"] == ref("google_artifact_registry_repository", "images")
        return "repository:images"
    raise AssertionError(f"unexpected IAM resource type {kind}")


def _table_grants(tf: Terraform) -> dict[str, set[tuple[str, str]]]:
    """The grants iam.tf's role table makes, with the resources that make
    them checked to iterate over exactly that table."""
    table = tf.locals["role_table"]
    assert tf.locals["custom_roles"] == {"incoming_consumer": INCOMING_CONSUMER}
    assert tf.locals["buckets"] == "${{for role, bucket in google_storage_bucket.buckets : role => bucket.name}}"
    for grants in ("project_grants", "bucket_grants"):
        assert "local.role_table" in tf.locals[grants], grants
    project = tf.resource("google_project_iam_member", "grants")
    assert project["for_each"] == "${local.project_grants}"
    assert (project["project"], project["role"]) == ("${var.project_id}", "${each.value.role}")
    assert project["member"] == "serviceAccount:${google_service_account.accounts[each.value.account].email}"
    bucket = tf.resource("google_storage_bucket_iam_member", "grants")
    assert bucket["for_each"] == "${local.bucket_grants}"
    assert bucket["bucket"] == "${local.buckets[each.value.bucket]}"
    assert bucket["role"] == "${lookup(local.custom_roles, each.value.role, each.value.role)}"
    assert bucket["member"] == project["member"]
    granted: dict[str, set[tuple[str, str]]] = {}
    for name, grants in table.items():
        found = granted.setdefault(name, set())
        found |= {("project", role) for role in grants["project"]}
        for bucket_name, roles in local_value(tf, grants["buckets"]).items():
            assert bucket_name in BUCKETS, f"{name}: no bucket {bucket_name}"
            found |= {(f"bucket:{bucket_name}", tf.locals["custom_roles"].get(role, role)) for role in roles}
    return granted


def test_each_service_account_has_only_its_listed_roles(tf: Terraform):
    accounts = set(tf.locals["service_accounts"])
    assert tf.resource("google_service_account", "accounts")["for_each"] == "${local.service_accounts}"
    assert set(tf.of_type("google_service_account")) == {"accounts"}
    assert accounts == set(EXPECTED_ROLES) == set(tf.locals["role_table"])
    granted = _table_grants(tf)
    publishers = tf.resource("google_pubsub_topic_iam_member", "events_publishers")
    assert publishers["for_each"] == "${local.event_publishers}"
    assert publishers["topic"] == ref("google_pubsub_topic", "events")
    assert publishers["member"] == "serviceAccount:${google_service_account.accounts[each.key].email}"
    for name in tf.locals["event_publishers"]:
        granted[name].add(("topic:events", publishers["role"]))
    for (kind, name), body in tf.resources.items():
        assert not kind.endswith(("_iam_binding", "_iam_policy")), f"{kind}.{name}: authoritative IAM would drop others' grants"
        if name in ("grants", "events_publishers"):
            continue
        table = re.fullmatch(r"\$\{local\.(\w+)\}", str(body.get("for_each")))
        each = tf.instances(kind, name).values() if table and isinstance(tf.locals[table.group(1)], dict) else [body]
        for instance in each:  # a for_each over a table: each of its grants
            for member in _members(instance):
                match = ACCOUNT.fullmatch(member)
                if match:
                    granted[match.group(1)].add((_scope(kind, instance), instance["role"]))
    assert granted == EXPECTED_ROLES


def test_readme_describes_the_role_table(tf: Terraform):
    """The "Service accounts" table of docs/security.md (moved there from the
    README) has one row per account of the table, and names each bucket that
    account is granted."""
    readme = (TERRAFORM.parent / "docs" / "security.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Service accounts**") :]
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[first + 2 :]:  # after the header and its rule
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    assert set(rows) == set(tf.locals["service_accounts"])
    words = {
        "incoming": "incoming",
        "processed": "processed",
        "models": "models",
        "training_data": "training-data",
        "dataflow": "dataflow",
    }
    for name, grants in tf.locals["role_table"].items():
        described = (
            rows[name] if "the same as" not in rows[name] else rows[rows[name].split("the same as ")[1].split()[0].strip(",.;")]
        )
        for bucket_name in local_value(tf, grants["buckets"]):
            assert words[bucket_name] in described, f"README row {name} does not mention the {bucket_name} bucket"


def test_incoming_custom_role_reads_and_deletes_only(tf: Terraform):
    role = tf.resource("google_project_iam_custom_role", "incoming_consumer")
    assert sorted(role["permissions"]) == ["storage.objects.delete", "storage.objects.get", "storage.objects.list"]


def test_storage_service_agent_may_publish_for_eventarc(tf: Terraform):
    grant = tf.resource("google_project_iam_member", "gcs_agent_publisher")
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["member"] == "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
    assert ("google_storage_project_service_account", "gcs") in tf.data


# --------------------------------------------------------------------------
# the backfill (docs/backfill.md)


def _queried_fields() -> set[str]:
    """Every classifications field a query of the code filters or orders on."""
    import ast

    fields = {
        name: value for name, value in vars(__import__("shared.records", fromlist=["Field"]).Field).items() if name.isupper()
    }
    found: set[str] = set()
    for folder in ("functions", "fashionctl", "reporting", "bench", "backfill", "shared"):
        for source in (TERRAFORM.parent / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "FieldFilter",
                    "order_by",
                ):
                    first = node.args[0] if node.args else None
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        found.add(first.value)
                    elif isinstance(first, ast.Attribute) and first.attr in fields:
                        found.add(fields[first.attr])
    return found


def test_index_exemptions_name_only_stored_fields_no_query_reads(tf: Terraform):
    from shared.records import Field

    exempt = set(tf.locals["unqueried_fields"])
    queried = _queried_fields()
    assert {"status", "created_at", "updated_at"} <= queried  # the scan sees the known queries
    assert exempt and not exempt & queried, exempt & queried
    assert exempt <= set(Field.ALL)
    assert {"finished_at", "lease_until"} <= exempt  # the monotonically rising ones
    field = tf.resource("google_firestore_field", "unqueried")
    assert field["for_each"] == "${toset(local.unqueried_fields)}"
    assert field["collection"] == "classifications" and field["database"] == ref("google_firestore_database", "main")
    assert block(field, "index_config") == {}


def test_no_dataflow_job_is_a_terraform_resource(tf: Terraform):
    """A finished batch job must not be launched again by the next apply:
    the backfill is run, never managed as a resource."""
    for kind in ("google_dataflow_job", "google_dataflow_flex_template_job"):
        assert not tf.of_type(kind), kind
    assert "dataflow" in tf.locals["bucket_settings"] and "dataflow" in tf.locals["default_bucket_names"]
    assert "backfill_max_workers" in tf.variables and "backfill_template" in tf.outputs


def test_counter_shards_are_a_setting_terraform_passes(tf: Terraform):
    assert tf.locals["function_environment"]["STATS_SHARDS"] == "${tostring(var.stats_shards)}"
