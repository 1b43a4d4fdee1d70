"""``make bundle``: the functions source archive is reproducible, holds what
Cloud Functions needs at its root, and every entry point imports from the
unpacked archive in a fresh virtual environment with only the archive's
requirements installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts import bundle
from tests.deploy.conftest import REPO, block, load_terraform

ENTRY_POINTS = {"classify_upload", "predict", "sweep", "review"}


def _make_bundle(out: Path) -> bytes:
    run = subprocess.run(
        ["make", "--no-print-directory", "bundle", f"BUNDLE={out}", f"PYTHON={sys.executable}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sources/functions-" in run.stdout
    return out.read_bytes()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "functions.zip"
    _make_bundle(out)
    return out


def test_make_bundle_is_reproducible(archive: Path, tmp_path: Path):
    first = archive.read_bytes()
    assert _make_bundle(tmp_path / "again.zip") == first
    assert bundle.object_name(archive) == bundle.object_name(tmp_path / "again.zip")
    # Same sources elsewhere, with other timestamps and permissions: same bytes.
    copy = tmp_path / "copy"
    for package in bundle.packages():
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.rglob("*"):
        os.utime(path, (2_000_000_000, 2_000_000_000))
        if path.is_file():
            path.chmod(0o600)
    assert bundle.build(tmp_path / "elsewhere.zip", root=copy).read_bytes() == first


def test_layout_at_the_archive_root(archive: Path):
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {"main.py", "requirements.txt", "functions/__init__.py", "functions/main.py", "shared/__init__.py"} <= set(names)
        assert zf.read("requirements.txt") == (REPO / "functions" / "requirements.txt").read_bytes()
        packages = bundle.packages()
        assert {"functions", "shared"} <= set(packages)
        for package in packages:
            for path in (REPO / package).rglob("*.py"):
                if "__pycache__" not in path.parts:
                    assert zf.read(path.relative_to(REPO).as_posix()) == path.read_bytes()
        assert {n.split("/")[0] for n in names if "/" in n} == set(packages)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if n.split("/")[0] in ("tests", "training", "fashionctl", "terraform")]
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_root_main_exports_what_terraform_deploys(archive: Path):
    deployed = {
        block(body, "build_config")["entry_point"]
        for body in load_terraform().instances("google_cloudfunctions2_function", "functions").values()
    }
    exported = set(bundle.entry_points(REPO / "functions" / "main.py"))
    assert deployed == ENTRY_POINTS
    assert deployed <= exported
    with zipfile.ZipFile(archive) as zf:
        main = zf.read("main.py").decode()
    for name in deployed:
        assert name in main


def _python() -> str:
    """The functions' runtime version (python312) when this machine has it."""
    for candidate in ("python3.12",):
        found = shutil.which(candidate)
        if found and subprocess.run([found, "--version"], capture_output=True, timeout=30).returncode == 0:
            return found
    return sys.executable


def test_entry_points_import_in_a_fresh_venv(archive: Path, tmp_path: Path):
    source = tmp_path / "source"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(source)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    subprocess.run([_python(), "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    names = sorted(ENTRY_POINTS)
    probe = (
        "import sys, main, functions, shared\n"
        "from pathlib import Path\n"
        "root = Path.cwd().resolve()\n"
        "for module in (main, functions, shared):\n"
        "    assert Path(module.__file__).resolve().is_relative_to(root), module.__file__\n"
        f"for name in {names!r}:\n"
        "    assert callable(getattr(main, name)), name\n"
        "import importlib\n"
        "for path in sorted(root.rglob('*.py')):\n"
        "    if path.parent != root:  # every module of every bundled package imports\n"
        "        importlib.import_module('.'.join(path.relative_to(root).with_suffix('').parts).removesuffix('.__init__'))\n"
        "import ai_edge_litert.interpreter\n"
        "print('ok', sys.version_info[:2])\n"
    )
    run = subprocess.run([str(python), "-c", probe], cwd=source, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.startswith("ok")
