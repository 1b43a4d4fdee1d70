"""``python -m bench.models A B``: a tiny run of the side-by-side predict
timing on real JPEG bytes; prints its figures (never asserts a timing)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from bench.models import jpegs, main


def test_two_models_timed_in_turn_on_jpeg_bytes(tiny_model_dir, tmp_path, capsys):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    for k in range(3):
        buffer = io.BytesIO()
        Image.fromarray(np.full((40, 30, 3), 60 * k, np.uint8)).save(buffer, "JPEG")
        (images / f"{k}.jpg").write_bytes(buffer.getvalue())
    code = main(
        [str(tiny_model_dir.float32_dir), str(tiny_model_dir.int8_dir), "--data", str(tmp_path / "data"), "--rounds", "6"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 3 and result["rounds"] == 6
    for side in ("a_ms", "b_ms"):
        assert 0 < result[side]["min"] <= result[side]["median"] <= result[side]["p95"]
    assert result["min_ratio"] > 0 and result["median_ratio"] > 0 and result["paired_median_ratio"] > 0
    assert result["a"]["version"] == "tiny-float32" and result["b_attributes"] == []


def test_no_images_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no images"):
        jpegs(str(tmp_path), 5)
