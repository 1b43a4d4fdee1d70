"""The pieces of ``make demo`` (scripts/demo.py) that need no running stack:
finding or training the model, choosing the sample, and the report."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from scripts import demo
from shared.model_layout import POINTER, parse_pointer


def version_folder(root: Path, version: str = "v-demo", split: list[list[str]] | None = None) -> Path:
    folder = root / version
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"model")
    (folder / "manifest.json").write_text(
        json.dumps({"version": version, "labels": ["A", "B"], "quantization": {"type": "int8"}})
    )
    if split is not None:
        (folder / "split.json").write_text(json.dumps({"items": {"train": [["1", "A"]], "val": [], "test": split}}))
    return folder


def store(root: Path, version: str = "v-demo") -> Path:
    version_folder(root / "models", version)
    (root / POINTER).write_text(json.dumps({"version": version}))
    return root


def args_for(tmp_path: Path, **overrides: object) -> argparse.Namespace:
    values = {"model_dir": None, "out": str(tmp_path / "store"), "data": str(tmp_path / "data"), "weights": "w.h5"}
    values["state_dir"] = str(tmp_path / "state")
    return argparse.Namespace(**(values | overrides))


def test_a_version_folder_given_as_model_dir_becomes_a_one_version_store(tmp_path: Path):
    folder = version_folder(tmp_path / "elsewhere")
    found = demo.get_model(args_for(tmp_path, model_dir=str(folder)))
    assert found == tmp_path / "state" / "demo-model-store"
    assert parse_pointer((found / POINTER).read_bytes()) == "v-demo"
    assert (found / "models" / "v-demo" / "model.tflite").read_bytes() == b"model"


def test_a_store_given_as_model_dir_is_used_as_it_is(tmp_path: Path):
    given = store(tmp_path / "given")
    assert demo.get_model(args_for(tmp_path, model_dir=str(given))) == given


def test_the_out_store_is_reused_when_it_has_a_current_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store(tmp_path / "store")
    monkeypatch.setattr(demo.subprocess, "call", lambda *a, **k: pytest.fail("must not train"))
    assert demo.get_model(args_for(tmp_path)) == tmp_path / "store"


def test_without_a_model_the_embedded_default_model_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(demo.subprocess, "call", lambda *a, **k: pytest.fail("must not train unless asked"))
    found = demo.get_model(args_for(tmp_path))
    assert found == demo.EMBEDDED_MODEL_STORE and (found / POINTER).is_file()


def test_the_committed_samples_are_three_per_class_and_one_non_photo():
    samples = demo.committed_samples()
    labelled = [s for s in samples if s.truth]
    assert len(labelled) == 30 and len({s.truth for s in labelled}) == 10
    assert [s.name for s in samples if s.truth is None] == ["not-a-photo.jpg"] and samples[-1].truth is None
    assert all(s.read()[:3] == b"\xff\xd8\xff" for s in labelled)


def test_with_train_the_training_job_runs_into_the_out_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def training(command: list[str]) -> int:
        calls.append(command)
        store(tmp_path / "store")
        return 0

    monkeypatch.setattr(demo.subprocess, "call", training)
    assert demo.get_model(args_for(tmp_path, train=True)) == tmp_path / "store"
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "training", "run"]
    assert command[4:] == ["--data", str(tmp_path / "data"), "--weights", "w.h5", "--out", str(tmp_path / "store")]


@pytest.mark.parametrize("code", [1, 3])
def test_a_training_job_that_publishes_nothing_stops_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int):
    monkeypatch.setattr(demo.subprocess, "call", lambda command: code)
    with pytest.raises(demo.DemoError, match="failed with exit code 1" if code == 1 else "quality gate"):
        demo.get_model(args_for(tmp_path, train=True))


def test_the_sample_takes_n_per_class_from_the_test_split_only(tmp_path: Path):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    for image_id in ("1", "2", "3", "4", "5", "6"):
        (images / f"{image_id}.jpg").write_bytes(b"jpeg")
    split = [["2", "B"], ["3", "A"], ["4", "A"], ["5", "A"], ["6", "B"], ["404", "B"]]
    folder = version_folder(tmp_path / "models", split=split)
    chosen = demo.sample(folder, tmp_path / "data", per_class=2)
    assert [(s.name, s.truth) for s in chosen] == [("3.jpg", "A"), ("4.jpg", "A"), ("2.jpg", "B"), ("6.jpg", "B")]
    assert chosen[0].read() == b"jpeg"


def test_the_report_lists_every_file_with_truth_prediction_and_place():
    samples = [demo.Sample("1.jpg", "Watches", data=b""), demo.Sample("2.jpg", "Tops", data=b""), demo.unusable_file()]
    records = {
        "1.jpg": {"status": "classified", "label": "Watches", "confidence": 0.91, "destination": {"name": "watches/1.jpg"}},
        "2.jpg": {
            "status": "needs_review",
            "label": "Shirts",
            "confidence": 0.41,
            "destination": {"name": "review/shirts/2.jpg"},
        },
        demo.REJECT_NAME: {
            "status": "rejected",
            "error": {"reason": "not_an_image"},
            "destination": {"name": f"rejected/{demo.REJECT_NAME}"},
        },
    }
    lines = demo.result_lines(samples, records)
    assert lines[0] == ["1.jpg", "Watches", "Watches", "91.0%", "classified", "watches/1.jpg", "ok"]
    assert lines[1] == ["2.jpg", "Tops", "Shirts", "41.0%", "needs_review", "review/shirts/2.jpg", "MISS"]
    assert lines[2] == [demo.REJECT_NAME, "-", "-", "-", "rejected: not_an_image", f"rejected/{demo.REJECT_NAME}", ""]
    summary = demo.summary(samples, records, 12.34)
    assert summary == "1/2 correct (50%); 3 files: 1 classified, 1 needs_review, 1 rejected; wall time 12.3 s"


def test_the_report_shows_attributes_when_the_model_gives_them():
    """With a model with attribute heads (attributes-model/), each line ends
    with the effective attributes, an empty one as ``?``; the table gets an
    ``attributes`` column."""
    samples = [demo.Sample("1.jpg", "Watches", data=b"")]
    attributes = {
        "gender": {"value": "Men", "confidence": 0.9, "threshold": 0.5, "best": "Men"},
        "colour": {"value": None, "confidence": 0.3, "threshold": 0.8, "best": "black"},
    }
    records = {
        "1.jpg": {
            "status": "classified",
            "label": "Watches",
            "confidence": 0.91,
            "destination": {"name": "watches/1.jpg"},
            "attributes": attributes,
        }
    }
    (line,) = demo.result_lines(samples, records)
    assert line[:7] == ["1.jpg", "Watches", "Watches", "91.0%", "classified", "watches/1.jpg", "ok"]
    assert set(line[7].split()) == {"gender=Men", "colour=?"}
    out = io.StringIO()
    demo.report(samples, records, {}, "processed", out)
    header = out.getvalue().strip().splitlines()[0]
    assert header.split()[-1] == "attributes"


def test_the_layout_counts_objects_per_folder():
    class Blob:
        def __init__(self, name: str) -> None:
            self.name = name

    class Client:
        def list_blobs(self, bucket: str) -> list[Blob]:
            assert bucket == "processed"
            return [Blob(n) for n in ("tops/1.jpg", "tops/2.jpg", "review/tops/3.jpg", "rejected/x.jpg", "rejected/y.jpg")]

    assert demo.processed_layout(Client(), "processed") == {"rejected": 2, "review/tops": 1, "tops": 2}


def test_a_missing_dataset_is_a_clear_error_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """From a clone with no ../shared beside it: one line saying where to get
    the data and how to pass it, no training run, no traceback."""
    code = demo.main(["--data", str(tmp_path / "nowhere"), "--weights", "imagenet", "--out", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 1
    assert "no dataset at" in err and "DATA_DIR=" in err and "kaggle.com" in err
    assert not (tmp_path / "store").exists()
