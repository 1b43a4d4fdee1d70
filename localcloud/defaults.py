"""Where the local emulated cloud keeps its files, and its loopback defaults."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / "build" / "stack"
DEFAULT_MODEL_STORE = REPO_ROOT / "build" / "model-store"
DEFAULT_FUNCTION_SOURCE = REPO_ROOT / "functions" / "main.py"
DEFAULT_FUNCTION_TARGET = "classify_upload"
DEFAULT_NODE_DIR = REPO_ROOT / "build" / "node"
PROJECT = "demo-fashion"
HOST = "127.0.0.1"
