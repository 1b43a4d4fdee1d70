"""The ``fashionctl`` commands: each module declares its commands (in
``COMMANDS``) and their options, reads what it needs from the
:class:`~fashionctl.context.Context`, prints, and raises
:class:`~fashionctl.errors.CommandError` when it cannot go on."""
