"""Where the development copies of the data and weights live: beside the
checkout, in ``../shared/`` (never inside the project). Used as defaults by
the tools that need them; each takes a path option instead."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA = REPO_ROOT.parent / "shared" / "data" / "fashion-product-images-small"
DEV_WEIGHTS = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def default_data() -> str | None:
    """The development copy of the data beside the checkout, when present."""
    return str(DEV_DATA) if (DEV_DATA / "styles.csv").is_file() else None


def default_weights() -> str:
    """The development weights file beside the checkout, else Keras's
    ``imagenet`` download (which works in the cloud)."""
    return str(DEV_WEIGHTS) if DEV_WEIGHTS.is_file() else "imagenet"
