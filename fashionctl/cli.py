"""``fashionctl``: operator commands for the fashion classifier."""

from __future__ import annotations

import argparse
import sys

from shared.errors import ModelError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionctl", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    classify = commands.add_parser("classify", help="classify local image files offline")
    classify.add_argument(
        "--model-dir",
        required=True,
        help="a model version folder (model.tflite + manifest.json) or a model store holding models/current.json",
    )
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("--top-k", type=int, default=3)
    classify.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "classify":
        from fashionctl import classify

        try:
            return classify.run(args.model_dir, args.paths, as_json=args.json, top_k=args.top_k)
        except ModelError as exc:
            print(f"fashionctl: {exc}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
