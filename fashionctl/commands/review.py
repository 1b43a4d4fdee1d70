"""``fashionctl review list|show|approve|relabel|reject``: the review desk
from the command line, through the stack's ``review`` function (fashionctl/review.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fashionctl.context import POSITIVE_INT, Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError

if TYPE_CHECKING:  # imported on use: requests is not loaded for other commands
    from fashionctl.review import ReviewClient

json_option = click.option("--json", "as_json", is_flag=True, help="JSON for machines")
change_option = click.option("--change", is_flag=True, help="replace an earlier, different decision")
attribute_option = click.option(
    "--attribute",
    "attributes",
    multiple=True,
    metavar="NAME=VALUE",
    help="correct an attribute (gender, colour, usage, season): NAME=VALUE, or NAME= to leave it empty; repeatable",
)


def _client(context: Context) -> ReviewClient:
    from fashionctl.review import ReviewClient

    url = context.env.get("REVIEW_URL")
    if not url:
        raise CommandError("no REVIEW_URL: start the local stack with `fashionctl up`, or set REVIEW_URL", USAGE)
    return ReviewClient(url)


def _decide(
    context: Context,
    ids: tuple[str, ...],
    action: str,
    label: str | None,
    reason: str | None,
    change: bool,
    as_json: bool,
    attributes: tuple[str, ...] = (),
) -> int:
    from fashionctl import review as core

    try:
        corrections = core.parse_attributes(attributes)
    except ValueError as exc:
        raise CommandError(str(exc), USAGE) from exc
    try:
        results = _client(context).decide(core.decisions(list(ids), action, label, reason, change, corrections))
    except core.ReviewUnavailable as exc:
        raise CommandError(str(exc)) from exc
    for result in results:
        if as_json:
            core.print_json(result)
        else:
            click.echo(core.render_result(result))
    return 0 if all(r.get("ok") for r in results) else 1


@click.group("review", help="the review desk: list the queue, show an item, approve, relabel or reject items")
def review() -> None:
    pass


@review.command("list", help="the items waiting for review (oldest first, or most uncertain first)")
@state_dir_option
@click.option("--band", type=click.Choice(["check", "review"]), help="only this band")
@click.option("--category", help="only this predicted category")
@click.option("--older-than", type=float, metavar="SECONDS", help="only items older than this")
@click.option("--order", type=click.Choice(["oldest", "uncertain"]), default="oldest", show_default=True)
@click.option("--empty-attributes", is_flag=True, help="only items with an attribute the model left empty")
@click.option("--limit", type=POSITIVE_INT, default=50, show_default=True)
@json_option
@pass_context
def list_(
    context: Context,
    band: str | None,
    category: str | None,
    older_than: float | None,
    order: str,
    empty_attributes: bool,
    limit: int,
    as_json: bool,
) -> int:
    from fashionctl import review as core

    try:
        items, progress = _client(context).queue(
            limit,
            band=band,
            category=category,
            older_than=older_than,
            order=order,
            attributes="empty" if empty_attributes else None,
        )
    except core.ReviewUnavailable as exc:
        raise CommandError(str(exc)) from exc
    if as_json:
        core.print_json({"items": items, "progress": progress})
    else:
        for line in core.render_queue(items, progress):
            click.echo(line)
    return 0


@review.command("show", help="one item: the model's answer, the file, its metadata, the decision if any")
@state_dir_option
@click.argument("item_id")
@json_option
@pass_context
def show(context: Context, item_id: str, as_json: bool) -> int:
    from fashionctl import review as core

    try:
        item = _client(context).item(item_id)
    except core.ReviewUnavailable as exc:
        raise CommandError(str(exc)) from exc
    if as_json:
        core.print_json(item)
    else:
        for key in (
            "id",
            "status",
            "label",
            "confidence",
            "margin",
            "band",
            "sku",
            "created_at",
            "source",
            "destination",
            "attributes",
            "review",
            "metadata",
        ):
            if key == "attributes":
                if item.get(key):
                    click.echo(f"{key + ':':<12} {core.render_attributes(item[key])}")
                continue
            click.echo(f"{key + ':':<12} {core.json.dumps(item.get(key), ensure_ascii=False, default=str)}")
    return 0


@review.command("approve", help="the model was right: file each item under its predicted category")
@state_dir_option
@click.argument("ids", nargs=-1, required=True)
@click.option("--note", help="an optional note")
@attribute_option
@change_option
@json_option
@pass_context
def approve(
    context: Context, ids: tuple[str, ...], note: str | None, attributes: tuple[str, ...], change: bool, as_json: bool
) -> int:
    return _decide(context, ids, "approve", None, note, change, as_json, attributes)


@review.command("relabel", help="file each item under another category")
@state_dir_option
@click.argument("ids", nargs=-1, required=True)
@click.option("--label", required=True, help="the right category")
@click.option("--note", help="an optional note")
@attribute_option
@change_option
@json_option
@pass_context
def relabel(
    context: Context,
    ids: tuple[str, ...],
    label: str,
    note: str | None,
    attributes: tuple[str, ...],
    change: bool,
    as_json: bool,
) -> int:
    return _decide(context, ids, "relabel", label, note, change, as_json, attributes)


@review.command("reject", help="unusable: move each item to rejected/ with the reason")
@state_dir_option
@click.argument("ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="why the photo is unusable")
@change_option
@json_option
@pass_context
def reject(context: Context, ids: tuple[str, ...], reason: str, change: bool, as_json: bool) -> int:
    return _decide(context, ids, "reject", None, reason, change, as_json)


COMMANDS = (review,)
