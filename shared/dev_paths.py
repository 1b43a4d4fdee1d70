"""Where things live beside and inside the checkout.

- The development copies of the data and weights: beside the checkout, in
  ``../shared/`` (never inside the project). Used as defaults by the tools
  that need them; each takes a path option instead.
- The embedded default model (``default-model/``, a model store committed
  with the repository: ``models/current.json`` + one version folder) and the
  demo's sample photos (``samples/``, with ``labels.csv``), so that
  ``fashionctl classify``, ``fashionctl up`` and ``make demo`` work on a
  fresh clone with nothing beside it.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA = REPO_ROOT.parent / "shared" / "data" / "fashion-product-images-small"
DEV_DATA_12K = REPO_ROOT.parent / "shared" / "data" / "fashion-product-images-12k"
DEV_WEIGHTS = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"

#: Where ``make train`` publishes (a model store).
TRAINED_MODEL_STORE = REPO_ROOT / "build" / "model-store"
#: The embedded default model: a model store committed with the repository.
EMBEDDED_MODEL_STORE = REPO_ROOT / "default-model"
#: The demo's sample files, with ``labels.csv`` (file, label, source).
SAMPLES_DIR = REPO_ROOT / "samples"


def default_data() -> str | None:
    """The development copy of the data beside the checkout, when present."""
    return str(DEV_DATA) if (DEV_DATA / "styles.csv").is_file() else None


def default_weights() -> str:
    """The development weights file beside the checkout, else Keras's
    ``imagenet`` download (which works in the cloud)."""
    return str(DEV_WEIGHTS) if DEV_WEIGHTS.is_file() else "imagenet"


def default_model_store(trained: Path = TRAINED_MODEL_STORE, embedded: Path = EMBEDDED_MODEL_STORE) -> Path:
    """The model store to use when none is given: ``trained`` (where
    ``make train`` publishes) once it has a current model, else the embedded
    default model. Only checks that the pointer file exists; loading the
    model checks the rest (shared.model_layout.resolve_model_dir)."""
    from shared.model_layout import POINTER

    return trained if (Path(trained) / POINTER).is_file() else embedded
