"""Fixtures of the deployment tests: the Terraform configuration parsed with
python-hcl2 (no terraform binary or provider is needed), and checkov in its
own tool virtual environment (its dependencies clash with the pinned set)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
CHECKOV_PIN = "checkov==3.3.30"
CHECKOV_VENV = REPO / "build" / "tools" / "checkov-venv"

_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def parse_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


@dataclass
class Terraform:
    """Every block of terraform/*.tf, by kind."""

    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == kind}

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        assert (kind, name) in self.resources, f"no resource {kind}.{name}"
        return self.resources[(kind, name)]

    def instances(self, kind: str, name: str) -> dict[str, dict[str, Any]]:
        """The instances of a resource whose ``for_each`` is a local map
        (``for_each = local.NAME``): each key -> the body Terraform evaluates
        for it, ``each.key``, ``each.value`` and ``each.value.ATTR`` replaced
        by the key and the map's values (an index ``[each.key]`` or
        ``[each.value]`` becomes ``["KEY"]``, ``["VALUE"]``), and each dynamic block of the form
        ``for_each = each.value.ATTR == null ? [] : [each.value.ATTR]`` (or
        ``== ""``) written out as a block, or left out when the value is
        null or empty (a value that is an expression counts as present)."""
        body = self.resource(kind, name)
        match = re.fullmatch(r"\$\{local\.(\w+)\}", str(body.get("for_each")))
        assert match, f"{kind}.{name} does not iterate over a local map: {body.get('for_each')}"
        table = self.locals[match.group(1)]
        rest = {key: value for key, value in body.items() if key != "for_each"}
        return {key: _instance(rest, key, entry) for key, entry in table.items()}


_EACH_VALUE = re.compile(r"\$\{each\.value\.(\w+)\}")
_OPTIONAL_BLOCK = re.compile(r'\$\{each\.value\.(\w+) == (?:null|"") \? \[\] : \[each\.value\.\1\]\}')
_ABSENT = (None, "", "null", "${null}")


def _instance(value: Any, key: str, entry: dict[str, Any]) -> Any:
    """``value`` (a parsed body or part of one) for the instance ``key`` of
    a for_each over a local map whose value for it is ``entry``."""
    if isinstance(value, list):
        return [_instance(item, key, entry) for item in value]
    if isinstance(value, str):
        if value == "${each.value}":
            return entry
        if whole := _EACH_VALUE.fullmatch(value):
            return entry[whole.group(1)]
        value = value.replace("${each.key}", key).replace("[each.key]", f'["{key}"]')
        return value.replace("[each.value]", f'["{entry}"]') if isinstance(entry, str) else value
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    kept: list[dict[str, Any]] = []
    for name, item in value.items():
        if name != "dynamic":
            out[name] = _instance(item, key, entry)
            continue
        for dynamic in item:
            for block_name, spec in dynamic.items():
                optional = _OPTIONAL_BLOCK.fullmatch(str(spec.get("for_each")))
                if not optional:
                    kept.append({block_name: _instance(spec, key, entry)})
                    continue
                present = entry[optional.group(1)]
                if present in _ABSENT:
                    continue
                content = json.dumps(_instance(block(spec, "content"), key, entry))
                rendered = json.loads(content.replace(f"${{{block_name}.value}}", json.dumps(str(present))[1:-1]))
                out.setdefault(block_name, []).append(rendered)
    if kept:
        out["dynamic"] = kept
    return out


_ADDRESS = re.compile(r"(?<![\w.])(data\.)?((?:google|time)_\w+)\.(\w+)")
_LOCAL = re.compile(r"(?<![\w.])local\.(\w+)")


def _references(tf: Terraform, value: Any, seen_locals: set[str]) -> set[str]:
    """Addresses (``kind.name``, ``data.kind.name``) that ``value``, a parsed
    body, names: directly, in depends_on, or through the locals it reads."""
    text = json.dumps(value)
    found = {f"{data or ''}{kind}.{name}" for data, kind, name in _ADDRESS.findall(text)}
    for name in _LOCAL.findall(text):
        if name not in seen_locals and name in tf.locals:
            seen_locals.add(name)
            found |= _references(tf, tf.locals[name], seen_locals)
    return found


def dependency_graph(tf: Terraform) -> dict[str, set[str]]:
    """Every resource and data source -> the addresses it depends on
    directly (a reference or depends_on; locals followed), as Terraform
    orders the apply. Names only: the graph Terraform builds from the same
    text, without a terraform binary."""
    graph: dict[str, set[str]] = {}
    for (kind, name), body in tf.resources.items():
        graph[f"{kind}.{name}"] = _references(tf, body, set()) - {f"{kind}.{name}"}
    for (kind, name), body in tf.data.items():
        graph[f"data.{kind}.{name}"] = _references(tf, body, set()) - {f"data.{kind}.{name}"}
    return graph


def depends_on(graph: dict[str, set[str]], start: str, target: str) -> bool:
    """Whether ``start`` is applied after ``target`` (a path of dependencies)."""
    queue, seen = deque([start]), {start}
    while queue:
        for nxt in graph.get(queue.popleft(), ()):
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False


def load_terraform(directory: Path = TERRAFORM) -> Terraform:
    tf = Terraform()
    for path in sorted(directory.glob("*.tf")):
        doc = parse_hcl(path)
        for kind, target in (("resource", tf.resources), ("data", tf.data)):
            for entry in doc.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        assert (rtype, name) not in target, f"{rtype}.{name} declared twice"
                        target[(rtype, name)] = body
        for entry in doc.get("variable", []):
            tf.variables.update(entry)
        for entry in doc.get("output", []):
            tf.outputs.update(entry)
        for entry in doc.get("locals", []):
            tf.locals.update(entry)
    return tf


@pytest.fixture(scope="session")
def tf() -> Terraform:
    return load_terraform()


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block ``name`` of a resource body."""
    value = body[name]
    if isinstance(value, list):
        assert len(value) == 1, f"expected one {name} block, got {len(value)}"
        value = value[0]
    return value


def local_value(tf: Terraform, value: Any) -> Any:
    """``value``, or the local it names when it is exactly ``${local.NAME}``."""
    if isinstance(value, str) and (match := re.fullmatch(r"\$\{local\.(\w+)\}", value)):
        return tf.locals[match.group(1)]
    return value


def entry_points(main_py: Path = REPO / "functions" / "main.py") -> dict[str, list[str]]:
    """Top-level functions of functions/main.py -> their decorators (dotted)."""
    tree = ast.parse(main_py.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = [ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list]
    return found


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The checkov executable, installed on first use into its own venv."""
    exe = CHECKOV_VENV / "bin" / "checkov"
    if exe.exists():
        return exe
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        subprocess.run(["python3", "-m", "venv", str(CHECKOV_VENV)], check=True, capture_output=True, timeout=120, env=env)
        subprocess.run(
            [str(CHECKOV_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", CHECKOV_PIN],
            check=True,
            capture_output=True,
            timeout=600,
            env=env,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot install {CHECKOV_PIN} into {CHECKOV_VENV}: {exc} {detail.decode(errors='replace')[-500:]}")
    if not exe.exists():
        pytest.skip(f"{CHECKOV_PIN} installed no checkov executable")
    return exe
