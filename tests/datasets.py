"""Tiny datasets in the Kaggle layout (styles.csv + images/<id>.jpg), made
in the tests so that they never depend on a download."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HEADER = [
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
]
_COLOURS = [(200, 30, 30), (30, 60, 200), (30, 160, 60), (220, 180, 20), (120, 40, 160)]


def synthetic_product(class_index: int, variant: int, size: int = 96) -> bytes:
    """A JPEG whose colour and shape depend on the class: easy to learn."""
    rng = np.random.default_rng(class_index * 1000 + variant)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c + rng.integers(-20, 20)) for c in _COLOURS[class_index % len(_COLOURS)])
    pad = int(rng.integers(4, size // 5))
    box = (pad, pad, size - pad, size - pad)
    if class_index % 3 == 0:
        draw.rectangle(box, fill=colour)
    elif class_index % 3 == 1:
        draw.ellipse(box, fill=colour)
    else:
        draw.polygon([(size // 2, pad), (size - pad, size - pad), (pad, size - pad)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_kaggle_dataset(
    root: Path,
    counts: dict[str, int],
    *,
    missing: int = 0,
    corrupt: int = 0,
    malformed_rows: int = 0,
    size: int = 96,
) -> Path:
    """Write ``root/styles.csv`` and ``root/images``; ``counts`` maps
    articleType -> number of good images. Extra rows reference missing or
    corrupt images, or are malformed, so that prepare has something to skip."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    next_id = 1000
    first_label = next(iter(counts))
    for class_index, (label, count) in enumerate(counts.items()):
        for variant in range(count):
            (images / f"{next_id}.jpg").write_bytes(synthetic_product(class_index, variant, size))
            rows.append([str(next_id), "Men", "Apparel", "Topwear", label, "Red", "Fall", "2012", "Casual", f"Item {next_id}"])
            next_id += 1
    for _ in range(missing):
        rows.append([str(next_id), "Men", "Apparel", "Topwear", first_label, "Red", "Fall", "2012", "Casual", "gone"])
        next_id += 1
    for _ in range(corrupt):
        (images / f"{next_id}.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        rows.append([str(next_id), "Men", "Apparel", "Topwear", first_label, "Red", "Fall", "2012", "Casual", "broken"])
        next_id += 1
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    text = buffer.getvalue() + "".join(f"{9000 + k},Men\n" for k in range(malformed_rows))
    (root / "styles.csv").write_text(text)
    return root
