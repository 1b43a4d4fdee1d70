"""The one error type of the command line: a message for the user and the
exit code; :func:`fashionctl.cli.main` prints it (each line prefixed
``fashionctl: ``, on stderr) and exits with the code."""

from __future__ import annotations

#: exit codes: 1 the operation failed, 2 the command was used wrongly or a required program or setting is missing
FAILED = 1
USAGE = 2


class CommandError(Exception):
    """A command cannot do what was asked; ``message`` may hold several lines."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
