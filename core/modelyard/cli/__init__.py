"""The ``modelyard`` command line: typer + rich over the same :class:`~modelyard.platform.Platform` verbs (or a
server's, with ``--server``).

Plugins add commands through the ``modelyard_cli_commands`` hook; inside a command,
:func:`get_state` gives the invocation's :class:`CliState` (config path, server URL, the platform).
"""

from modelyard.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliState,
    build_app,
    exit_code_for,
    get_state,
    main,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CliState", "build_app", "exit_code_for", "get_state", "main"]
