"""cloudbuild.yaml parses, has the steps the deployment needs, and every
file, make target, module and Terraform variable it names exists."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from tests.deploy.conftest import REPO, TERRAFORM, Terraform

CLOUDBUILD = REPO / "cloudbuild.yaml"
STEPS = [
    "test",
    "bundle",
    "terraform-init",
    "terraform-bootstrap",
    "upload-bundle",
    "training-image",
    "push-training-image",
    "terraform-plan",
    "terraform-apply",
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
    for target in re.findall(r"-target=([\w.]+)", script):
        kind, name = target.split(".")
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
