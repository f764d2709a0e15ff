"""The ``modelyard`` command line: typer + rich over the :class:`~modelyard.api.PlatformAPI` verbs of an embedded
:class:`~modelyard.platform.Platform` or, with ``--server``, of a :class:`~modelyard.client.Client`.

Plugins add commands through the ``modelyard_cli_commands`` hook; inside a command, :func:`get_state` gives the
invocation's :class:`CliState` (config path, server URL, and ``api()``: the platform or client it acts on).
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
