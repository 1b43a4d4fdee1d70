"""The one preprocessing path, shared by training, evaluation, export checks
and serving, so a model and the code that feeds it can never disagree.

Images are decoded to RGB, stretched to ``size`` x ``size`` (the training
images are stretched squares already) with bilinear filtering and returned as
uint8 pixels in [0, 255]. Scaling to the network's range happens inside the
model, so the int8 TFLite model can take these bytes directly.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
from PIL import Image

from shared.imaging import DEFAULT_LIMITS, DecodeLimits, decode_cost, decode_rgb, open_checked

#: Recorded in every manifest; the Classifier refuses a model made for another.
PREPROCESSING = {
    "name": "stretch-bilinear-uint8",
    "resize": "stretch",
    "filter": "bilinear",
    "color": "RGB",
    "input_range": [0, 255],
    "normalization": "in-model: x / 127.5 - 1",
}


def to_model_input(image: Image.Image, size: int) -> np.ndarray:
    """RGB image -> ``(size, size, 3)`` uint8 array."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


#: Decodes that hold more than HEAVY_PIXELS (``decode_cost``: every pixel of a
#: large image in all formats but JPEG, which ``draft`` shrinks while decoding,
#: so only a JPEG over about 64 megapixels or a large progressive one) take
#: turns, one at a time per process.
#: One costs up to about 15 bytes a declared pixel at its peak (RGBA PNG;
#: tests/reliability/test_decode_memory.py), so a function instance serving
#: several requests at once holds at most one of them: at the default
#: 16-megapixel limit about 240 MB, beside at most 15 MB for each other request.
HEAVY_PIXELS = 1_000_000
_heavy_decode = threading.Lock()


def prepare_image(data: bytes, size: int, *, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Image bytes -> model input, raising ImageError for unusable input."""
    image = open_checked(data, limits=limits, draft_size=size)
    heavy = decode_cost(image, size) > HEAVY_PIXELS
    with _heavy_decode if heavy else contextlib.nullcontext():
        return to_model_input(decode_rgb(image, draft_size=size, data=data), size)
