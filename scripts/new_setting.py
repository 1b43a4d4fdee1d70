"""Photos of a different setting, made from catalogue images the base model
never trained on, and the accuracy of models on them (issue 17's real run).

``python -m scripts.new_setting make --data DATASET --split SPLIT_JSON --out DIR [--count 600] [--held-back 0.35] [--seed 17]``
    takes ``--count`` images of the split's **val** side (never trained on;
    not the test side, which stays the untouched catalogue benchmark),
    stratified by class, and turns each into a photo of another setting:
    the studio's white backdrop replaced by a textured background (a colour
    gradient with noise, stripes like floorboards or tiles), the product
    re-framed (scaled 55-95% and placed off centre, or cropped tighter),
    a perspective warp (corners moved up to 8%), lighting (brightness,
    contrast, a colour cast and a light falloff across the frame), a slight
    blur and JPEG quality 60-85. Deterministic: one seeded RNG per image
    (``seed`` and the image id). Writes two sets in the Kaggle layout:
    ``DIR/new-setting`` (to fine-tune on) and ``DIR/new-setting-held-back`` (per class, the
    ``--held-back`` share, never trained on), each ``styles.csv`` + ``images/``.

``python -m scripts.new_setting evaluate --model MODEL_DIR [--folder DIR ...] [--split SPLIT_JSON --data DATASET]``
    prints the accuracy of a model (a version folder or a store root,
    through the shared LiteRT Classifier: the serving path) on every image of
    each folder and on the test side of the split.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from training.data import Split, read_styles

#: ``styles.csv`` columns written (``id`` and ``articleType`` are what the job reads)
COLUMNS = ("id", "articleType", "source_id", "transform")


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured background (H, W, 3) float in [0, 255]: a two-colour
    gradient with noise, plus stripes (floorboards) or a grid (tiles) in half the cases."""
    start, end = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1) / 2
    image = start + (end - start) * ramp[..., None]
    kind = rng.integers(0, 3)
    if kind == 1:  # stripes
        period = rng.uniform(12, 40)
        image *= (0.85 + 0.15 * (np.sin(2 * np.pi * (xs if rng.random() < 0.5 else ys) / period) > 0))[..., None]
    elif kind == 2:  # tiles
        period = rng.uniform(20, 60)
        grout = ((xs % period) < 2) | ((ys % period) < 2)
        image[grout] *= 0.6
    image += rng.normal(0, rng.uniform(4, 14), (height, width, 1))
    return np.clip(image, 0, 255)


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """PIL's PERSPECTIVE coefficients mapping ``dst`` corners onto ``src`` corners."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, dtype=np.float64), np.array([c for p in src for c in p], dtype=np.float64))
    return solution.tolist()


def transform(data: bytes, rng: np.random.Generator) -> tuple[bytes, dict]:
    """One catalogue photo -> the same product in another setting (JPEG bytes)
    and the parameters drawn (for ``styles.csv``)."""
    product = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = product.size
    pixels = np.asarray(product, dtype=np.float32)
    # the backdrop: near-white pixels, grown a little and softened at the edge
    mask_image = Image.fromarray(((pixels > 235).all(axis=-1) * 255).astype(np.uint8))
    mask = np.asarray(mask_image.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.GaussianBlur(1.5)), np.float32) / 255
    params: dict = {}
    # framing: scale the product and place it on a canvas, or crop tighter
    if rng.random() < 0.6:
        scale = float(rng.uniform(0.55, 0.95))
        new_w, new_h = max(8, int(width * scale)), max(8, int(height * scale))
        left, top = int(rng.integers(0, width - new_w + 1)), int(rng.integers(0, height - new_h + 1))
        small = np.asarray(product.resize((new_w, new_h), Image.BILINEAR), np.float32)
        small_mask = (
            np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((new_w, new_h), Image.BILINEAR), np.float32) / 255
        )
        canvas = np.full_like(pixels, 255.0)
        canvas_mask = np.ones((height, width), np.float32)
        canvas[top : top + new_h, left : left + new_w] = small
        canvas_mask[top : top + new_h, left : left + new_w] = small_mask
        pixels, mask = canvas, canvas_mask
        params["frame"] = f"scale {scale:.2f} at {left},{top}"
    else:
        crop = float(rng.uniform(0.8, 0.95))
        cw, ch = int(width * crop), int(height * crop)
        left, top = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
        pixels = np.asarray(
            Image.fromarray(pixels.astype(np.uint8)).crop((left, top, left + cw, top + ch)).resize((width, height)), np.float32
        )
        mask = (
            np.asarray(
                Image.fromarray((mask * 255).astype(np.uint8)).crop((left, top, left + cw, top + ch)).resize((width, height)),
                np.float32,
            )
            / 255
        )
        params["frame"] = f"crop {crop:.2f} at {left},{top}"
    background = _background(rng, width, height)
    pixels = pixels * (1 - mask[..., None]) + background * mask[..., None]
    # perspective: move each corner by up to 8% of the side
    jitter = 0.08
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    moved = [(x + rng.uniform(-jitter, jitter) * width, y + rng.uniform(-jitter, jitter) * height) for x, y in corners]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    fill = tuple(int(c) for c in background.mean(axis=(0, 1)))
    image = image.transform(
        (width, height), Image.PERSPECTIVE, _perspective_coeffs(corners, moved), Image.BILINEAR, fillcolor=fill
    )
    # lighting: brightness, contrast, colour cast, falloff across the frame
    out = np.asarray(image, np.float32)
    brightness, contrast = float(rng.uniform(0.6, 1.25)), float(rng.uniform(0.7, 1.15))
    cast = rng.uniform(0.85, 1.15, 3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    falloff = 1 - rng.uniform(0.1, 0.4) * np.hypot((xs - cx) / width, (ys - cy) / height)
    out = ((out - 128) * contrast + 128) * brightness * cast * falloff[..., None]
    image = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    quality = int(rng.integers(60, 86))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    params.update(brightness=round(brightness, 2), contrast=round(contrast, 2), quality=quality)
    return buffer.getvalue(), params


def make(data: Path, split_path: Path, out: Path, count: int, held_back: float, seed: int) -> dict:
    """Write ``out/new-setting`` and ``out/new-setting-held-back``; returns the counts per class."""
    split = Split.from_json(split_path.read_text())
    by_class: dict[str, list[str]] = defaultdict(list)
    for image_id, label in split.items["val"]:
        by_class[label].append(image_id)
    total = sum(len(v) for v in by_class.values())
    rng = np.random.default_rng(seed)
    chosen: dict[str, dict[str, list[str]]] = {"new-setting": {}, "new-setting-held-back": {}}
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        take = max(4, round(count * len(ids) / total))
        picked = [ids[k] for k in rng.permutation(len(ids))[:take]]
        n_back = max(2, round(len(picked) * held_back))
        chosen["new-setting-held-back"][label], chosen["new-setting"][label] = picked[:n_back], picked[n_back:]
    counts = {}
    for part, classes in chosen.items():
        folder = out / part
        (folder / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        for label, ids in classes.items():
            for image_id in ids:
                image_rng = np.random.default_rng([seed, zlib.crc32(image_id.encode())])
                photo, params = transform((data / "images" / f"{image_id}.jpg").read_bytes(), image_rng)
                new_id = f"ns{image_id}"
                (folder / "images" / f"{new_id}.jpg").write_bytes(photo)
                rows.append({"id": new_id, "articleType": label, "source_id": image_id, "transform": json.dumps(params)})
        with (folder / "styles.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        counts[part] = {label: len(ids) for label, ids in classes.items()}
    return counts


def evaluate(model: Path, folders: list[Path], split_path: Path | None, data: Path | None) -> dict:
    """Accuracy of the model on each folder (every row) and on the split's test side."""
    from shared.classifier import Classifier
    from shared.preprocess import prepare_image
    from training import evaluate as ev

    classifier = Classifier.load(model)
    sets: dict[str, list[tuple[Path, str]]] = {}
    for folder in folders:
        rows, _ = read_styles((folder / "styles.csv").read_bytes())
        sets[str(folder)] = [(folder / "images" / f"{i}.jpg", label) for i, label in rows]
    if split_path is not None and data is not None:
        split = Split.from_json(split_path.read_text())
        sets[f"{split_path} test"] = [(data / "images" / f"{i}.jpg", label) for i, label in split.items["test"]]
    results = {"model": classifier.version}
    for name, items in sets.items():
        pixels = np.stack([prepare_image(path.read_bytes(), classifier.size) for path, _ in items])
        predicted = ev.predict_classifier(classifier, pixels).argmax(axis=1)
        truth = np.array([classifier.labels.index(label) for _, label in items])
        hits = int((predicted == truth).sum())
        results[name] = {"accuracy": round(hits / len(items), 4), "correct": hits, "images": len(items)}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.new_setting", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--data", type=Path, required=True)
    m.add_argument("--split", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--count", type=int, default=600)
    m.add_argument("--held-back", type=float, default=0.35)
    m.add_argument("--seed", type=int, default=17)
    e = sub.add_parser("evaluate")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--folder", type=Path, action="append", default=[])
    e.add_argument("--split", type=Path)
    e.add_argument("--data", type=Path)
    args = p.parse_args(argv)
    if args.command == "make":
        print(json.dumps(make(args.data, args.split, args.out, args.count, args.held_back, args.seed), indent=1))
    else:
        print(json.dumps(evaluate(args.model, args.folder, args.split, args.data), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
