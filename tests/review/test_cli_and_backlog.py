"""``fashionctl up`` starts the review desk on loopback next to predict;
``fashionctl review list|show|approve|relabel|reject`` work through it; the
backlog and the decisions show in ``fashionctl health``, predict's ``/stats``
and the operations report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import localcloud
from fashionctl import cli
from reporting.collect import make_report
from shared import records as rec
from tests.images import make_photo_like
from tests.pipeline.conftest import FIRESTORE_PREFERENCE
from tests.pipeline.test_end_to_end import make_store, require_stack, stop_leftovers, wait_for


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[tuple[Path, dict[str, str]]]:
    require_stack()
    root = tmp_path_factory.mktemp("review-stack")
    state_dir = root / "state"
    config = localcloud.StackConfig(
        state_dir=state_dir,
        ports=localcloud.Ports.free(),
        settings=localcloud.default_settings(confidence_threshold=0.99, reviewer="cli-tester"),
        model_store=make_store(root / "store", Path(tiny_model_dir.int8_dir)),
        firestore=FIRESTORE_PREFERENCE,
    )
    try:
        started = localcloud.up(config, localcloud.find_tools())
        env = localcloud.read_env_file(state_dir / localcloud.ENV_FILE)
        assert "review" in {p.name for p in started.state.components}
        assert env["REVIEW_URL"] in started.state.info["review"] and "cli-tester" in started.state.info["review"]
        with pytest.MonkeyPatch.context() as mp:
            for name in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):  # the tests' clients and fashionctl's
                mp.setenv(name, env[name])
            yield state_dir, env
    finally:
        localcloud.down(state_dir)
        stop_leftovers(state_dir)


def fashionctl_json(capsys: pytest.CaptureFixture, state_dir: Path, *args: str, code: int = 0) -> list[Any]:
    capsys.readouterr()
    assert cli.main([*args, "--state-dir", str(state_dir), "--json"]) == code
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_review_from_the_command_line_and_the_backlog_everywhere(local_stack, capsys: pytest.CaptureFixture):
    state_dir, env = local_stack
    storage = localcloud.storage_client(env["STORAGE_EMULATOR_HOST"], env["GOOGLE_CLOUD_PROJECT"])
    for n in range(4):
        storage.bucket(env["INCOMING_BUCKET"]).blob(f"cli-{n}.jpg").upload_from_string(
            make_photo_like(seed=100 + n), content_type="image/jpeg"
        )

    def queued() -> list[dict] | None:
        [body] = fashionctl_json(capsys, state_dir, "review", "list")
        return body["items"] if len(body["items"]) == 4 else None

    items = wait_for(queued, 90, "4 items waiting for review")
    ids = [item["id"] for item in items]
    [shown] = fashionctl_json(capsys, state_dir, "review", "show", ids[0])
    assert shown["status"] == rec.NEEDS_REVIEW and shown["id"] == ids[0]
    other = next(label for label in json.loads(requests.get(env["REVIEW_URL"] + "/api/labels", timeout=30).text)["labels"])
    [approved] = fashionctl_json(capsys, state_dir, "review", "approve", ids[0])
    [relabeled] = fashionctl_json(capsys, state_dir, "review", "relabel", ids[1], "--label", other)
    rejected = fashionctl_json(capsys, state_dir, "review", "reject", ids[2], ids[3], "--reason", "not a product")
    assert approved["ok"] and relabeled["ok"] and all(r["ok"] for r in rejected)
    assert approved["review"]["reviewed_by"] == "cli-tester"
    [refused] = fashionctl_json(capsys, state_dir, "review", "approve", ids[2], code=1)
    assert refused["error"]["code"] == "already_decided"
    capsys.readouterr()
    assert cli.main(["review", "approve", ids[2], "--state-dir", str(state_dir)]) == 1
    assert "pass --change to replace that decision" in capsys.readouterr().out  # the CLI names its flag
    [changed] = fashionctl_json(capsys, state_dir, "review", "approve", ids[2], "--change")
    assert changed["ok"] and changed["review"]["previous"][0]["decision"] == rec.REVIEW_REJECTED
    capsys.readouterr()
    assert cli.main(["review", "list", "--state-dir", str(state_dir)]) == 0
    listed = capsys.readouterr().out
    assert "0 waiting" in listed
    # one rule for "decided today" (docs/review.md): 4 decisions + 1 replacing one = 5, everywhere
    assert "5 decided today" in listed
    [body] = fashionctl_json(capsys, state_dir, "review", "list")
    assert body["progress"]["done_today"] == 5
    bad = requests.get(env["REVIEW_URL"] + "/api/queue", params={"category": "Nope"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_label"
    known = requests.get(env["REVIEW_URL"] + "/api/queue", params={"category": other}, timeout=30)
    assert known.status_code == 200 and known.json()["items"] == []

    # approved: ids[0] and (after the change) ids[2]; ids[1] too when `other` was its predicted label
    right = 2 + (other == items[1]["label"])
    [health] = fashionctl_json(capsys, state_dir, "health")
    review = health["review"]
    assert review["total"] == 0 and review["reviewed"] == 4 and review["model_right"] == right
    assert review["accuracy_on_reviewed"] == right / 4
    capsys.readouterr()
    cli.main(["health", "--state-dir", str(state_dir)])
    text = capsys.readouterr().out
    assert "model right on reviewed" in text and "5 decided today" in text

    stats = requests.get(env["PREDICT_URL"] + "/stats?days=1", timeout=60).json()
    assert stats["review"]["reviewed"] == 4 and stats["review"]["total"] == 0
    assert sum(stats["totals"]["review"].values()) == 5  # four decisions and one change, each counted
    today = rec.day_of(rec.utcnow())
    assert stats["review"]["reviewed_per_day"][today] == stats["days"][today]["review"]  # the same rule, per decision

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    db = firestore.Client(project=env["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials())
    report = make_report(db, storage, models_bucket=env["MODELS_BUCKET"], days=1)
    assert report.summary.review["reviewed"] == 4 and report.summary.review["model_right"] == right
    assert "Review desk" in report.html and "Model right on reviewed" in report.html

    page = requests.get(env["REVIEW_URL"] + "/", timeout=30)
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
