"""``fashionctl classify`` on folders (issue 13, kind 8): every file of the
folder, at any depth and whatever its name, gets a result; each file that
could not be classified is reported; the exit status is 1 if any failed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from fashionctl import classify
from tests.images import make_heic, make_photo_like

REPO = Path(__file__).resolve().parents[2]


def make_folder(root: Path) -> dict[str, str | None]:
    """Files -> the reason each must fail with (None: classified)."""
    picture = Image.open(io.BytesIO(make_photo_like((96, 72), seed=12))).convert("RGB")
    jpeg = make_photo_like((96, 72), seed=12)
    (root / "sub" / "deeper").mkdir(parents=True)
    files = {
        "download.jfif": (jpeg, None),
        "photo.jpe": (jpeg, None),
        "sub/IMG_0001.HEIC": (make_heic(picture), None),
        "sub/deeper/no-extension": (jpeg, None),
        "sub/heic-called.jpg": (make_heic(picture), None),
        "notes.txt": (b"a shopping list, not a photo\n", "not_an_image"),
        ".DS_Store": (b"\x00\x00\x00\x01Bud1" + bytes(100), "not_an_image"),
        "cut.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
    }
    for name, (data, _) in files.items():
        (root / name).write_bytes(data)
    (root / "gone.jpg").symlink_to(root / "missing-target.jpg")  # a dangling link: reported, not skipped
    return {name: reason for name, (_, reason) in files.items()} | {"gone.jpg": "unreadable_file"}


def test_every_file_of_a_folder_gets_a_result(tiny_model_dir: Any, tmp_path: Path, capsys: Any) -> None:
    expected = make_folder(tmp_path)
    out = io.StringIO()
    status = classify.run(str(tiny_model_dir.int8_dir), [str(tmp_path)], as_json=True, out=out)
    results = {Path(r["file"]).relative_to(tmp_path).as_posix(): r for r in map(json.loads, out.getvalue().splitlines())}
    assert status == 1
    assert set(results) == set(expected)
    for name, reason in expected.items():
        if reason is None:
            assert results[name]["label"] in tiny_model_dir.labels, (name, results[name])
        else:
            assert results[name]["reason"] == reason, (name, results[name])
    assert "4 of 9 file(s) could not be classified" in capsys.readouterr().err


def test_a_folder_of_images_exits_0_and_a_named_missing_file_is_reported(tiny_model_dir: Any, tmp_path: Path) -> None:
    jpeg = make_photo_like((64, 48), seed=3)
    for name in ("a.jfif", "b.jpe", "c.JPEG"):
        (tmp_path / name).write_bytes(jpeg)
    command = [sys.executable, "-m", "fashionctl.cli", "classify", "--model-dir", str(tiny_model_dir.int8_dir), "--json"]
    done = subprocess.run([*command, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sum('"label"' in line for line in done.stdout.splitlines()) == 3
    done = subprocess.run(
        [*command, str(tmp_path), str(tmp_path / "nope.jpg")], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    (missing,) = [json.loads(line) for line in done.stdout.splitlines() if "error" in line]
    assert missing["file"].endswith("nope.jpg") and missing["reason"] == "unreadable_file"


def test_the_text_table_shows_the_attributes_of_a_model_with_attribute_heads(tmp_path: Path) -> None:
    """issue 19: one column per attribute, in ATTRIBUTES order."""
    from shared.attributes import ATTRIBUTES

    photo = tmp_path / "shirt.jpg"
    photo.write_bytes(make_photo_like((96, 72), seed=5))
    out = io.StringIO()
    assert classify.run(str(REPO / "attributes-model"), [str(photo)], as_json=False, out=out) == 0
    lines = out.getvalue().splitlines()
    header = lines[1].split()
    assert header == ["file", "label", "confidence", *ATTRIBUTES]
    cells = lines[2].split()[-len(ATTRIBUTES) :]  # a label may hold a space
    assert cells[0] in ("Men", "Women", "Boys", "Girls", "Unisex") or cells[0].startswith("?"), cells
    assert "%" in lines[2].split()[-len(ATTRIBUTES) - 1]


def test_the_text_table_of_a_category_only_model_is_unchanged(tiny_model_dir: Any, tmp_path: Path) -> None:
    photo = tmp_path / "shirt.jpg"
    photo.write_bytes(make_photo_like((96, 72), seed=5))
    out = io.StringIO()
    classify.run(str(tiny_model_dir.int8_dir), [str(photo)], as_json=False, out=out)
    lines = out.getvalue().splitlines()
    assert lines[1].split() == ["file", "label", "confidence"]
    assert len(lines) == 3
