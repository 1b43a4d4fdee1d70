"""``python -m training [run|prepare|train|export|evaluate|thresholds|gate|report|publish]``.

Every option comes from a field of JobConfig, TrainConfig or GateConfig
(training/config.py, training/publish.py): its name (``work_dir`` ->
``--work-dir``), type, default and help; nothing is restated here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import typing
from pathlib import Path

from training.config import JobConfig, TrainConfig
from training.publish import GateConfig
from training.thresholds import ThresholdConfig

STAGES = ("run", "prepare", "train", "export", "evaluate", "thresholds", "gate", "report", "publish")
log = logging.getLogger("training")

#: Nested sections of JobConfig and their dataclasses.
SECTIONS = {"train": TrainConfig, "gate": GateConfig, "thresholds": ThresholdConfig}
#: Fields set from another option rather than their own: TrainConfig.seed is the job's --seed.
DERIVED = {("train", "seed")}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_field(group: argparse._ActionsContainer, owner: type, f: dataclasses.Field) -> None:
    hints = typing.get_type_hints(owner)
    kind = hints[f.name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    meta = dict(f.metadata)
    kwargs: dict = {"default": default, "help": meta.get("help", "") + (f" (default: {default})" if default is not None else "")}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is tuple:  # a repeatable option, named in the singular (sources -> --source)
        kwargs.update(action="append", type=str, default=None, metavar="PATH[:WEIGHT]")
        group.add_argument(_option(f.name.removesuffix("s")), _option(f.name), dest=f.name, **kwargs)
        return
    else:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kwargs["type"] = args[0] if args else kind
        kwargs["metavar"] = f.name.upper()
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
    group.add_argument(_option(f.name), dest=f.name if owner is JobConfig else f"{_section(owner)}.{f.name}", **kwargs)


def _section(owner: type) -> str:
    return next(name for name, cls in SECTIONS.items() if cls is owner)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    p.add_argument("stage", choices=STAGES, nargs="?", default="run", help="one stage, or 'run' for all (default)")
    for f in dataclasses.fields(JobConfig):
        if f.name not in SECTIONS:
            _add_field(p, JobConfig, f)
    for name, cls in SECTIONS.items():
        group = p.add_argument_group(f"{name} ({cls.__name__})")
        for f in dataclasses.fields(cls):
            if (name, f.name) not in DERIVED:
                _add_field(group, cls, f)
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> JobConfig:
    values = vars(args)
    sections = {
        name: cls(
            **{f.name: values[f"{name}.{f.name}"] for f in dataclasses.fields(cls) if (name, f.name) not in DERIVED},
            **({"seed": values["seed"]} if (name, "seed") in DERIVED else {}),
        )
        for name, cls in SECTIONS.items()
    }
    top = {f.name: values[f.name] for f in dataclasses.fields(JobConfig) if f.name not in SECTIONS}
    top["work_dir"] = Path(top["work_dir"])
    top["sources"] = tuple(top.get("sources") or ())
    return JobConfig(**top, **sections)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    from shared.logs import configure_logging

    configure_logging(args.log_level)
    config = config_from_args(args)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    from training import pipeline as p

    log.info("training job: %s", args.stage, extra={"stage": args.stage, "config": p.describe(config)})
    if args.stage == "run":
        return 0 if p.run_all(config) else 3
    if args.stage == "prepare":
        p.run_prepare(config)
    elif args.stage == "train":
        p.run_train(config, p.load_dataset(config))
    elif args.stage == "export":
        p.run_export(config, p.load_keras(config), p.load_dataset(config))
    elif args.stage == "evaluate":
        p.run_evaluate(config, p.load_keras(config), p.load_dataset(config))
    elif args.stage == "thresholds":
        p.run_thresholds(config)
    elif args.stage == "gate":
        decision = p.run_gate(config)
        print(json.dumps(decision.to_dict()))
        return 0 if decision.passed else 3
    elif args.stage == "report":
        p.run_report(config)
    elif args.stage == "publish":
        return 0 if p.run_publish(config) else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
