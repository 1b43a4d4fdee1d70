"""The one preprocessing path, shared by training, evaluation, export checks
and serving, so a model and the code that feeds it can never disagree.

Images are decoded to RGB, stretched to ``size`` x ``size`` (the training
images are stretched squares already) with bilinear filtering and returned as
uint8 pixels in [0, 255]. Scaling to the network's range happens inside the
model, so the int8 TFLite model can take these bytes directly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from shared.imaging import DEFAULT_LIMITS, DecodeLimits, load_image

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


def prepare_image(data: bytes, size: int, *, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Image bytes -> model input, raising ImageError for unusable input."""
    return to_model_input(load_image(data, limits=limits, draft_size=size), size)
