"""``fashionctl dataset export``: the records and the processed bucket -> a
training set (training/dataset_export.py)."""

from __future__ import annotations

import json

import click

from fashionctl.context import Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.group("dataset", short_help="training sets made from the retailer's results")
def dataset() -> None:
    """Training sets made from the retailer's results."""


@dataset.command(
    "export",
    short_help="write reviewed and auto-filed results as a training set (styles.csv + images/)",
    help="Write the classification records and their photos in the processed bucket as a training set in the "
    "layout the training job reads (styles.csv + images/), to a folder or gs://bucket/prefix: the human label where "
    "a record was reviewed, the model's where it was filed automatically, provenance columns, duplicates (same "
    "bytes) written once. Reads FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT from the "
    "environment, else from the stack's env file. Prints a JSON summary.",
)
@state_dir_option
@click.option("--out", required=True, metavar="DIR|gs://BUCKET/PREFIX", help="where to write the training set")
@click.option("--reviewed-only", is_flag=True, help="only records a human approved or relabeled")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), help="auto-filed records only at this confidence or above")
@click.option("--since", metavar="DATE", help="records created on or after (YYYY-MM-DD or ISO 8601, UTC)")
@click.option("--until", metavar="DATE", help="records created before (YYYY-MM-DD or ISO 8601, UTC)")
@click.option("--category", "categories", multiple=True, help="only this final label (repeatable)")
@click.option(
    "--human-attributes-only", is_flag=True, help="attribute columns only where a person set the value (else the model's too)"
)
@pass_context
def export(
    context: Context,
    out: str,
    reviewed_only: bool,
    min_confidence: float | None,
    since: str | None,
    until: str | None,
    categories: tuple[str, ...],
    human_attributes_only: bool,
) -> int:
    from fashionctl.preflight import reaching_the_stack
    from training import dataset_export as core
    from training.storage import GcsStore, open_store

    try:
        filters = core.filters_from(
            reviewed_only=reviewed_only,
            min_confidence=min_confidence,
            since=since,
            until=until,
            categories=categories,
            human_attributes_only=human_attributes_only,
        )
    except ValueError as exc:
        raise CommandError(str(exc), USAGE) from exc
    with reaching_the_stack(context.env, "export the training set"):
        storage = context.storage
        store = GcsStore(out, storage) if out.startswith("gs://") else open_store(out)
        result = core.export(core.read_records(context.firestore, filters), core.fetcher(storage), store, filters)
    click.echo(json.dumps(result.to_dict()))
    return 0


COMMANDS = (dataset,)
