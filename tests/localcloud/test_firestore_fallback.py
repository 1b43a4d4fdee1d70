"""The Firestore fallback for machines without the Cloud CLI emulator: the
npm package @firestore-emulator/server, served on loopback by a small Node
launcher, driven by the real google-cloud-firestore client."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from localcloud import ENV_FILE, STATE_FILE, State, alive, read_env_file
from tests.emulators import firestore_emulator, require, unavailable
from tests.localcloud.test_cli import FREE_PORTS, fashionctl


def _client(monkeypatch, host: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    return firestore.Client(project="demo-fashion", credentials=AnonymousCredentials())


def test_the_npm_emulator_serves_writes_reads_queries_and_transactions(tmp_path, monkeypatch):
    from google.cloud import firestore

    require("firestore-npm")
    with firestore_emulator(tmp_path, kind="npm") as host:
        client = _client(monkeypatch, host)
        ref = client.collection("classifications").document(uuid.uuid4().hex)
        ref.set({"status": "classified", "label": "Watches", "created": firestore.SERVER_TIMESTAMP})
        assert ref.get().to_dict()["label"] == "Watches"
        assert ref.get().to_dict()["created"] is not None
        query = client.collection("classifications").where(filter=firestore.FieldFilter("label", "==", "Watches"))
        assert [d.id for d in query.stream()] == [ref.id]

        @firestore.transactional
        def bump(transaction, counter):
            current = counter.get(transaction=transaction).to_dict() or {}
            transaction.set(counter, {"count": current.get("count", 0) + 1})

        counter = client.collection("stats").document("today")
        for _ in range(3):
            bump(client.transaction(), counter)
        assert counter.get().to_dict() == {"count": 3}  # sequentially right; concurrent isolation is not emulated


def test_up_can_use_the_npm_emulator_and_down_stops_it(tmp_path, monkeypatch):
    require("pubsub", "storage", "firestore-npm")
    state_dir = tmp_path / "state"
    flags = ["--firestore", "npm", "--no-function", "--model-store", str(tmp_path / "none")]
    result = fashionctl("up", "--state-dir", str(state_dir), *FREE_PORTS, *flags)
    try:
        assert result.returncode == 0, result.stderr
        assert "firestore: @firestore-emulator/server" in result.stdout
        env = read_env_file(state_dir / ENV_FILE)
        assert env["FASHION_FIRESTORE_EMULATOR"] == "npm"
        client = _client(monkeypatch, env["FIRESTORE_EMULATOR_HOST"])
        client.collection("runs").document("r1").set({"ok": True})
        assert client.collection("runs").document("r1").get().to_dict() == {"ok": True}
        procs = State.load(state_dir).components
        assert [p.name for p in procs] == ["pubsub", "firestore", "storage"]
        assert "node" in procs[1].argv[0]
    finally:
        down = fashionctl("down", "--state-dir", str(state_dir))
    assert down.returncode == 0
    assert not [p.name for p in procs if alive(p)]
    assert not (state_dir / STATE_FILE).exists()


@pytest.mark.parametrize("preference", ["auto", "official"])
def test_auto_prefers_the_official_emulator(preference):
    from localcloud import choose_firestore, find_tools

    tools = find_tools()
    if tools.missing("firestore"):
        unavailable(f"firestore emulator unavailable: {tools.missing('firestore')}")
    assert choose_firestore(tools, preference)[0] == "official"


def test_auto_falls_back_to_npm_where_the_official_emulator_is_absent(tmp_path):
    from localcloud import Tools, choose_firestore

    node_dir = tmp_path / "node"
    (node_dir / "node_modules" / "@firestore-emulator" / "server").mkdir(parents=True)
    (node_dir / "node_modules" / "@firestore-emulator" / "server" / "package.json").write_text("{}")
    no_cli = Tools(fake_gcs=None, java=None, sdk_root=None, pubsub_jar=None, firestore_jar=None)
    with_node = replace(no_cli, node=tmp_path / "node-bin", node_dir=node_dir)
    kind, why = choose_firestore(with_node, "auto")
    assert kind == "npm"
    assert "firestore emulator absent" in why
    assert "no transaction isolation" in why
    assert choose_firestore(with_node, "official") == (None, choose_firestore(no_cli, "official")[1])
    kind, why = choose_firestore(no_cli, "auto")
    assert kind is None
    assert "firestore emulator absent" in why
    assert "Node.js" in why
    not_installed = replace(with_node, node_dir=tmp_path / "empty")
    assert choose_firestore(not_installed, "npm")[0] is None  # neither installed nor installable (no npm)
    assert choose_firestore(replace(not_installed, npm=tmp_path / "npm"), "npm")[0] == "npm"  # installed on first use
