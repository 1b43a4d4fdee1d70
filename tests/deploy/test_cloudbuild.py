"""cloudbuild.yaml parses, has the steps the deployment needs, and every
file, make target, module and Terraform variable it names exists."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest
import yaml

from tests.deploy.conftest import REPO, TERRAFORM, Terraform

CLOUDBUILD = REPO / "cloudbuild.yaml"
STEPS = [
    "check-substitutions",
    "enable-apis",
    "test",
    "bundle",
    "terraform-init",
    "terraform-bootstrap",
    "upload-bundle",
    "training-image",
    "push-training-image",
    "backfill-image",
    "push-backfill-image",
    "terraform-plan",
    "terraform-apply",
    "backfill-template",
    "dead-letter",
    "train",
]


@pytest.fixture(scope="module")
def build() -> dict:
    return yaml.safe_load(CLOUDBUILD.read_text())


def _script(step: dict) -> str:
    return "\n".join(str(a) for a in step.get("args", []))


def test_steps_in_order_with_known_dependencies(build):
    ids = [step["id"] for step in build["steps"]]
    assert ids == STEPS
    for step in build["steps"]:
        for dependency in step.get("waitFor", []):
            assert dependency in ids[: ids.index(step["id"])], f"{step['id']} waits for {dependency}, not an earlier step"


def test_substitutions_used_are_declared(build):
    declared = set(build.get("substitutions", {}))
    text = json.dumps(build["steps"])  # the steps, not the comments
    used = set(re.findall(r"(?<!\$)\$\{(_[A-Z0-9_]+)\}", text)) | set(re.findall(r"(?<!\$)\$(_[A-Z0-9_]+)", text))
    assert used <= declared, used - declared


def test_make_targets_exist(build):
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, re.M))
    for step in build["steps"]:
        for match in re.finditer(r"\bmake ([^\n;&|]+)", _script(step)):
            for word in shlex.split(match.group(1)):
                if "=" not in word and not word.startswith("-"):
                    assert word in targets, f"{step['id']}: make {word} is not a Makefile target"


def test_named_files_and_modules_exist(build):
    checked = 0
    for step in build["steps"]:
        base = REPO / step.get("dir", "")
        assert base.is_dir(), step["id"]
        for line in _script(step).splitlines():
            try:
                words = shlex.split(line.replace("\\", " "), comments=True)
            except ValueError:
                words = line.split()
            for i, word in enumerate(words):
                if word == "-m" and i + 1 < len(words):
                    module = words[i + 1].replace(".", "/")
                    assert (REPO / f"{module}.py").exists() or (REPO / module / "__main__.py").exists(), word
                    checked += 1
                if word == "-f" and i + 1 < len(words):
                    assert (base / words[i + 1]).exists(), f"{step['id']}: {words[i + 1]}"
                    checked += 1
                if word.endswith((".example", ".py", "Dockerfile")) and "$" not in word:
                    assert (base / word).exists(), f"{step['id']}: {word} does not exist"
                    checked += 1
    assert checked >= 3


def test_generated_files_are_written_before_they_are_read(build):
    written: set[str] = set()
    for step in build["steps"]:
        base = step.get("dir", "")
        for line in _script(step).splitlines():
            for name in re.findall(r"cat (\S+?\.txt)", line):
                path = (REPO / base / name).resolve().relative_to(REPO).as_posix()
                assert path in written, f"{step['id']} reads {path} before any step writes it"
            for name in re.findall(r">\s*(\S+?\.txt)", line):
                written.add((REPO / base / name).resolve().relative_to(REPO).as_posix())


def test_terraform_variables_and_outputs_exist(build, tf: Terraform):
    script = "\n".join(_script(step) for step in build["steps"])
    for name in re.findall(r'-var="?([a-z_]+)=', script):
        assert name in tf.variables, f"-var {name} is not a Terraform variable"
    for name in re.findall(r"terraform output -raw (\w+)", script):
        assert name in tf.outputs, f"output {name} does not exist"
    targets = re.findall(r"""-target='?(\w+)\.(\w+)(?:\["(\w+)"\])?'?""", script)
    assert targets
    for kind, name, key in targets:
        if key:
            body = tf.resource(kind, name)
            assert body["for_each"] == "${local.bucket_names}" and key in tf.locals["default_bucket_names"], (kind, name, key)
        else:
            tf.resource(kind, name)
    required = {name for name, body in tf.variables.items() if "default" not in body}
    for step in ("terraform-bootstrap", "terraform-plan"):
        given = set(re.findall(r'-var="?([a-z_]+)=', _script(next(s for s in build["steps"] if s["id"] == step))))
        assert required <= given, f"{step} lacks {required - given}"
    assert (TERRAFORM / "backend.tf.example").exists()


def test_bundle_object_reaches_terraform(build):
    steps = {step["id"]: _script(step) for step in build["steps"]}
    assert "make bundle" in steps["bundle"]
    assert "build/bundle/object.txt" in steps["upload-bundle"]
    assert "function_source_object=$$(cat ../build/bundle/object.txt)" in steps["terraform-plan"]
    assert "terraform apply" in steps["terraform-apply"] and "tfplan" in steps["terraform-apply"]
    assert "_RUN_TRAINING" in steps["train"] and "gcloud run jobs execute" in steps["train"]
    assert "make lint test" in steps["test"]


def _step(build: dict, step_id: str) -> dict:
    return next(step for step in build["steps"] if step["id"] == step_id)


def _after(build: dict, step_id: str, earlier: str) -> bool:
    """Whether step ``step_id`` waits, directly or not, for ``earlier``."""
    steps = {step["id"]: step for step in build["steps"]}
    todo, seen = [step_id], set()
    while todo:
        for dependency in steps[todo.pop()].get("waitFor", []):
            if dependency == earlier:
                return True
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return False


def test_test_step_runs_where_the_whole_suite_can(build):
    """The Cloud CLI image with its emulators and Java, Node.js and npm
    installed, and a missing emulator failing the run instead of skipping."""
    step = _step(build, "test")
    assert step["name"].startswith("gcr.io/google.com/cloudsdktool/google-cloud-cli:") and step["name"].endswith("emulators")
    assert "FASHION_REQUIRE_EMULATORS=1" in step.get("env", [])
    install = next(line for line in _script(step).splitlines() if "apt-get install" in line)
    for package in ("make", "python3-venv", "nodejs", "npm"):
        assert package in install.split(), package
    for probe in ("java -version", "gcloud --version"):
        assert probe in _script(step)


def test_substitutions_are_checked_before_anything_runs(build):
    first = build["steps"][0]
    assert first["id"] == "check-substitutions"
    for step in build["steps"][1:]:
        assert _after(build, step["id"], "check-substitutions"), f"{step['id']} does not wait for the substitution check"


def _check_script(build: dict, **values: str) -> subprocess.CompletedProcess:
    """The check-substitutions step as Cloud Build runs it: ${_NAME}
    replaced, $$ turned into $; run by bash, without gcloud on PATH."""
    script = _script(_step(build, "check-substitutions")).split("\n", 1)[1]  # after "-c"
    for name, value in {**build["substitutions"], **values}.items():
        script = script.replace(f"${{{name}}}", value)
    script = script.replace("$$", "$")
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, env=env)


def test_an_empty_state_bucket_fails_first(build):
    assert build["substitutions"]["_TF_STATE_BUCKET"] == ""
    run = _check_script(build)
    assert run.returncode != 0
    assert "_TF_STATE_BUCKET is empty" in run.stderr
    for value, message in (("gs://my-state", "not a bucket name"),):
        run = _check_script(build, _TF_STATE_BUCKET=value)
        assert run.returncode != 0 and message in run.stderr, run.stderr
    run = _check_script(build, _TF_STATE_BUCKET="my-project-tfstate", _RUN_TRAINING="yes")
    assert run.returncode != 0 and "_RUN_TRAINING" in run.stderr
    # Well-formed values pass every check up to the bucket's existence,
    # which needs gcloud (absent here, so that check fails, and says so).
    run = _check_script(build, _TF_STATE_BUCKET="my-project-tfstate")
    assert run.returncode != 0
    assert "state bucket gs://my-project-tfstate does not exist" in run.stderr, run.stderr


def test_bootstrap_apis_are_enabled_before_terraform(build):
    """The provider needs Cloud Resource Manager and Service Usage before it
    can enable anything (a 403 otherwise); IAM before the first account."""
    script = _script(_step(build, "enable-apis"))
    for api in ("cloudresourcemanager", "serviceusage", "iam"):
        assert f"{api}.googleapis.com" in script
    for step in build["steps"]:
        if step.get("name", "").startswith("hashicorp/terraform"):
            assert _after(build, step["id"], "enable-apis"), f"{step['id']} may run before the APIs are enabled"


def test_the_pushed_training_image_is_listed(build):
    pushed = _step(build, "push-training-image")["args"][1]
    built = _step(build, "training-image")["args"]
    assert pushed in built
    assert build["images"] == [pushed]
    assert built[-1] == "."  # the repository root, narrowed by .dockerignore (tests/deploy/test_docker.py)


def test_the_backfill_template_is_built_not_run(build):
    """The backfill image is built with BuildKit (its own ignore file), pushed,
    and its template spec written after the apply; no step launches a job."""
    steps = {step["id"]: step for step in build["steps"]}
    assert "DOCKER_BUILDKIT=1" in steps["backfill-image"].get("env", [])
    assert "backfill/Dockerfile" in _script(steps["backfill-image"])
    assert "gcloud dataflow flex-template build" in _script(steps["backfill-template"])
    assert _after(build, "backfill-template", "terraform-apply") and _after(build, "backfill-template", "push-backfill-image")
    everything = "\n".join(_script(step) for step in build["steps"])
    assert "flex-template run" not in everything and "dataflow jobs run" not in everything
    # optional: with no launcher tag the three steps say so and do nothing
    for step in ("backfill-image", "push-backfill-image", "backfill-template"):
        assert '[ -n "${_FLEX_LAUNCHER_TAG}" ] ||' in _script(steps[step]), step
