"""``fashionctl upload``: image files into the incoming bucket (fashionctl/upload.py)."""

from __future__ import annotations

import click

from fashionctl.context import Context, pass_context, state_dir_option
from fashionctl.errors import USAGE, CommandError


@click.command("upload", help="upload image files (every file of a folder) to the incoming bucket")
@state_dir_option
@click.argument("paths", nargs=-1, required=True, metavar="FOLDER_OR_FILE...")
@click.option("--prefix", default="", help="object name prefix")
@click.option("--bucket", help="default: INCOMING_BUCKET (from the environment or the stack's env file)")
@pass_context
def upload(context: Context, paths: tuple[str, ...], prefix: str, bucket: str | None) -> int:
    from fashionctl import upload as core
    from fashionctl.preflight import reaching_the_stack

    try:
        target = core.UploadTarget.from_env(context.env, bucket)
    except ValueError as exc:
        raise CommandError(str(exc), USAGE) from exc
    with reaching_the_stack(context.env, "upload", ("STORAGE_EMULATOR_HOST",)):
        try:
            return core.run(list(paths), target, prefix=prefix)
        except FileNotFoundError as exc:
            raise CommandError(str(exc), USAGE) from exc


COMMANDS = (upload,)
