"""The model loop end to end on the emulators (issue 17): uploads classified
by the classify function (functions-framework over HTTP, fake-gcs-server,
the Firestore emulator), human review decisions including relabels written
as the contract's ``review`` map, ``fashionctl dataset export``, a tiny
retrain on the base set plus the export (fine-tuning the current model) published
as the candidate, the candidate scored in shadow on new uploads,
``fashionctl model compare``, a refused and an accepted ``promote``; the
promoted model then serves new uploads, and ``rollback`` restores the
previous one."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

import localcloud
from fashionctl.cli import main as fashionctl
from functions import destinations
from functions.review_desk import APPROVE, RELABEL, DecisionRequest, ReviewDesk
from shared import records as rec
from shared.model_layout import CANDIDATE_POINTER, POINTER, parse_pointer, pointer_previous
from shared.settings import Settings
from tests.cloudevents import post_blob_event
from tests.datasets import make_kaggle_dataset, synthetic_product
from tests.emulators import PROJECT, fake_gcs_server, firestore_emulator, free_port
from training import sources as src
from training.cli import main as training_main

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[2]
INCOMING, PROCESSED, MODELS = "loop-incoming", "loop-processed", "loop-models"
LABELS = {"Handbags": 14, "Heels": 14, "Watches": 14}
NAMES = list(LABELS)
TINY = [
    "--size", "32", "--weights", "none", "--batch-size", "8", "--representative-count", "6",
    "--min-accuracy", "0", "--log-level", "WARNING", "--no-flip-average",
]  # fmt: skip


class Loop:
    def __init__(self, root: Path, storage_url: str, function_url: str, base: Path, settings: Settings) -> None:
        self.root, self.storage_url, self.function_url, self.base = root, storage_url, function_url, base
        self.storage = localcloud.storage_client(storage_url, PROJECT)
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        self.db = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
        self.desk = ReviewDesk(settings, self.storage, self.db, lambda: list(NAMES))
        self.uploads = 0

    def upload(self, class_index: int, variant: int) -> rec.Classification:
        """Upload a photo of class ``class_index``, deliver its event, return its finished record."""
        self.uploads += 1
        blob = self.storage.bucket(INCOMING).blob(f"shop/photo-{self.uploads:03d}.jpg")
        blob.upload_from_string(synthetic_product(class_index, variant, 48), content_type="image/jpeg")
        answer = post_blob_event(self.function_url, blob, timeout=120)
        assert answer.status_code < 300, answer.text
        doc_id = rec.ObjectRef(INCOMING, blob.name, int(blob.generation)).doc_id
        snapshot = self.db.collection(rec.COLLECTION).document(doc_id).get()
        record = rec.Classification.from_firestore(snapshot.to_dict(), snapshot.id)
        assert record.status in (rec.CLASSIFIED, rec.NEEDS_REVIEW), record
        return record

    def review(self, record: rec.Classification, final_label: str) -> rec.Classification:
        """A human decision through the review desk's core (functions/review_desk.py):
        approve when ``final_label`` is the model's label, else relabel."""
        action = APPROVE if final_label == record.label else RELABEL
        request = DecisionRequest(id=record.id or "", action=action, label=final_label if action == RELABEL else None)
        return self.desk.decide(request, "tester").record

    def pointer(self, name: str) -> str | None:
        blob = self.storage.bucket(MODELS).get_blob(name)
        return parse_pointer(blob.download_as_bytes()) if blob else None

    def cli(self, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = fashionctl([*args[:2], "--state-dir", str(self.root / "state"), *args[2:]])
        out, err = capsys.readouterr()
        return code, out, err


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("modelloop")
    base = make_kaggle_dataset(root / "base", LABELS, size=48)
    with (
        pytest.MonkeyPatch.context() as mp,
        firestore_emulator(root, kind="auto") as firestore_host,
        fake_gcs_server(root) as storage_url,
    ):
        for key, value in {
            "FIRESTORE_EMULATOR_HOST": firestore_host,
            "STORAGE_EMULATOR_HOST": storage_url,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "MODELS_BUCKET": MODELS,
        }.items():
            mp.setenv(key, value)
        localcloud.create_buckets(storage_url, PROJECT, [INCOMING, PROCESSED, MODELS], versioned=(PROCESSED,))
        first = ["run", "--data", str(base), "--work-dir", str(root / "w1"), "--out", f"gs://{MODELS}", "--version", "v1"]
        assert training_main([*first, *TINY, "--head-epochs", "2", "--fine-tune-epochs", "1"]) == 0
        settings = Settings(
            project=PROJECT,
            incoming_bucket=INCOMING,
            processed_bucket=PROCESSED,
            models_bucket=MODELS,
            confidence_threshold=0.99,  # the tiny model is unsure: most uploads go to review
            model_cache_dir=str(root / "model-cache"),
            model_refresh_seconds=0.5,
        )
        env = localcloud.settings_env(settings) | {
            "STORAGE_EMULATOR_HOST": storage_url,
            "FIRESTORE_EMULATOR_HOST": firestore_host,
        }
        proc = localcloud.start_function(REPO / "functions" / "main.py", "classify_upload", free_port(), root, env)
        try:
            localcloud.wait_until(proc, localcloud.http_answers(proc.url or "", ok_only=False), 60)
            yield Loop(root, storage_url, proc.url or "", base, settings)
        finally:
            localcloud.stop(proc)


def test_reviewed_results_train_a_candidate_that_is_shadowed_compared_promoted_and_rolled_back(loop: Loop, capsys):
    # 1. uploads, served by v1; no candidate yet, so no shadow answer
    records = [loop.upload(k % 3, 100 + k) for k in range(9)]
    assert {r.model_version for r in records} == {"v1"} and all(r.candidate is None for r in records)

    # 2. review decisions through the review desk: the truth for each (relabels where the model was wrong)
    truths = {r.id: NAMES[k % 3] for k, r in enumerate(records)}
    waiting = [r for r in records if r.status == rec.NEEDS_REVIEW][:7]
    auto = [r for r in records if r.status == rec.CLASSIFIED]
    assert len(waiting) >= 5
    if all(r.label == truths[r.id] for r in waiting):
        truths[waiting[0].id] = next(n for n in NAMES if n != waiting[0].label)  # the human disagrees with the model
    for record in waiting:
        decided = loop.review(record, truths[record.id])
        assert decided.status == rec.REVIEWED and decided.final_label == truths[record.id]
        assert decided.label == record.label and decided.model_version == "v1"  # the model's answer is kept
    assert sum(r.label != truths[r.id] for r in waiting) >= 1

    # 3. export: reviewed ones with the human label, auto-filed ones with the model's, the review queue left out
    export = loop.root / "export-1"
    code, out, _ = loop.cli(capsys, "dataset", "export", "--out", str(export))
    assert code == 0, out
    summary = json.loads(out)
    assert summary["written"] == len(waiting) + len(auto) and sum(summary["labels"].values()) == summary["written"]
    assert summary["skipped"] == {}  # the review queue's records are not read at all
    with (export / "styles.csv").open() as handle:
        rows = {row["record_id"]: row for row in csv.DictReader(handle)}
    for record in waiting:
        row = rows[record.id]
        assert row["articleType"] == truths[record.id] and row["reviewer"] == "tester" and row["model_label"] == record.label
        assert row["review_decision"] == (rec.APPROVED if truths[record.id] == record.label else rec.RELABELED)
        assert (export / "images" / f"{record.id}.jpg").is_file()
    assert all(rows[r.id]["review_decision"] == "auto" and rows[r.id]["articleType"] == r.label for r in auto)
    code, out, _ = loop.cli(capsys, "dataset", "export", "--out", str(loop.root / "export-reviewed"), "--reviewed-only")
    assert code == 0 and json.loads(out)["written"] == len(waiting)

    # 4. a tiny retrain on the base set plus the export (weight 3), fine-tuning v1, published as the candidate
    retrain = [
        "run", "--data", str(loop.base), "--source", f"{export}:3", "--work-dir", str(loop.root / "w2"),
        "--out", f"gs://{MODELS}", "--version", "v2", "--publish-as", "candidate",
        "--init-from", str(loop.root / "w1" / "model.keras"), "--split-from", str(loop.root / "w1" / "split.json"),
        "--head-epochs", "0", "--fine-tune-epochs", "1",
    ]  # fmt: skip
    assert training_main([*retrain, *TINY]) == 0
    assert loop.pointer(POINTER) == "v1" and loop.pointer(CANDIDATE_POINTER) == "v2"
    split = json.loads((loop.root / "w2" / "split.json").read_text())
    first = json.loads((loop.root / "w1" / "split.json").read_text())
    assert set(split["sources"]) == {src.BASE, "export-1"} and split["sources"]["export-1"]["weight"] == 3.0
    base_test = [row for row in split["items"]["test"] if src.source_of(row[0]) == src.BASE]
    assert base_test == first["items"]["test"]  # the base's evaluation split did not move
    metrics = json.loads((loop.root / "w2" / "metrics.json").read_text())
    assert set(metrics["per_source"]) == {src.BASE, "export-1"}
    assert set(metrics["gate"]["per_source"]) == {src.BASE, "export-1"}  # gated against v1 on the same sets

    # 5. shadow: new uploads are served by v1, and carry v2's answer, not acted upon
    time.sleep(1.0)  # the function notices the candidate pointer within MODEL_REFRESH_SECONDS
    shadowed = [loop.upload(k % 3, 200 + k) for k in range(4)]
    for record in shadowed:
        assert record.model_version == "v1"
        assert record.candidate is not None and record.candidate["model_version"] == "v2"
        assert record.candidate["label"] in NAMES and 0 <= record.candidate["confidence"] <= 1
        assert record.candidate["latency_ms"] > 0 and len(record.candidate["top_k"]) == 3
        assert record.destination is not None and record.destination.name == destinations.target(
            record.status, record.label, record.source.name
        )

    # 6. compare: agreement over the shadowed records, reviewed accuracy for both, the gate's verdict
    code, out, _ = loop.cli(capsys, "model", "compare", "--min-accuracy", "0", "--max-regression", "1")
    assert code == 0, out
    comparison = json.loads(out)
    assert comparison["current"] == "v1" and comparison["candidate"] == "v2" and comparison["shadowed"] == 4
    agree = sum(r.candidate["label"] == r.label for r in shadowed)
    assert comparison["agreement"] == pytest.approx(agree / 4)
    assert sum(sum(c.values()) for c in comparison["would_change"].values()) == 4 - agree
    reviewed = comparison["reviewed"]
    assert reviewed["items"] + reviewed["excluded"] == len(waiting) and reviewed["excluded"] >= 1
    assert comparison["gate"]["passed"] is True and set(comparison["gate"]["per_source"]) == {src.BASE, "export-1"}

    # 7. promote: refused by a strict gate (nothing moves), then accepted
    code, out, err = loop.cli(capsys, "model", "promote", "--min-accuracy", "1.01")
    assert code == 1 and "REFUSED to promote v2" in err and "below the floor" in err
    assert loop.pointer(POINTER) == "v1" and loop.pointer(CANDIDATE_POINTER) == "v2"
    code, out, err = loop.cli(capsys, "model", "promote", "--min-accuracy", "0", "--max-regression", "1")
    assert code == 0, err
    assert "promoted v2" in out and loop.pointer(POINTER) == "v2" and loop.pointer(CANDIDATE_POINTER) is None
    current = loop.storage.bucket(MODELS).blob(POINTER).download_as_bytes()
    assert pointer_previous(current) == "v1"

    # 8. the promoted model serves new uploads (no candidate left to shadow)
    time.sleep(1.0)
    after = loop.upload(1, 300)
    assert after.model_version == "v2" and after.candidate is None

    # 9. rollback restores the previous model
    code, out, err = loop.cli(capsys, "model", "rollback")
    assert code == 0 and "current is v1 again" in out, err
    time.sleep(1.0)
    assert loop.upload(2, 301).model_version == "v1"
    code, _, err = loop.cli(capsys, "model", "compare")
    assert code == 1 and "no candidate model" in err
