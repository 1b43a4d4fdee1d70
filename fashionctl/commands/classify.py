"""``fashionctl classify``: local image files classified offline (fashionctl/classify.py)."""

from __future__ import annotations

import click

from fashionctl.errors import USAGE, CommandError
from shared.dev_paths import default_model_store
from shared.errors import ModelError


@click.command("classify", help="classify local image files (every file of a folder) offline")
@click.option(
    "--model-dir",
    default=None,
    help="a model version folder (model.tflite + manifest.json) or a model store holding models/current.json "
    "(default: build/model-store once `make train` has published a model there, else the embedded default-model/)",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--top-k", type=int, default=3, show_default=True)
@click.argument("paths", nargs=-1, required=True, metavar="FILE_OR_FOLDER...")
def classify(model_dir: str | None, as_json: bool, top_k: int, paths: tuple[str, ...]) -> int:
    from fashionctl import classify as core

    try:
        return core.run(str(model_dir or default_model_store()), list(paths), as_json=as_json, top_k=top_k)
    except ModelError as exc:
        raise CommandError(str(exc), USAGE) from exc


COMMANDS = (classify,)
