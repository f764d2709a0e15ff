"""The ``hookspec`` and ``hookimpl`` markers of the ``modelyard`` project (re-exported as ``modelyard.hookimpl``)."""

import pluggy

PROJECT = "modelyard"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The release that drops the hook names deprecated in this one.
REMOVED_IN = "0.3"


def renamed(old: str, new: str) -> DeprecationWarning:
    """The ``warn_on_impl`` warning of a hookspec kept under its old name for one release.

    pluggy emits it, pointing at the implementing function, when a plugin implementing ``old`` is registered.
    """
    return DeprecationWarning(f"the hook {old} is deprecated and will be removed in modelyard {REMOVED_IN}: "
                              f"implement {new} instead (same arguments, same records)")
