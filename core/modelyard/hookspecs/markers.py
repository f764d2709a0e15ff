"""The ``hookspec`` and ``hookimpl`` markers of the ``modelyard`` project (re-exported as ``modelyard.hookimpl``)."""

import pluggy

PROJECT = "modelyard"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
