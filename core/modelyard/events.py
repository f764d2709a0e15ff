"""Event delivery: every implementation of an event hook is called on its own.

pluggy calls a hook's implementations in one loop and stops at the first exception, so one failing monitor
would starve every observer registered before it (billing included) and turn a committed change into an error.
:func:`notify` calls each implementation separately, the way :func:`~modelyard.plugins.collect_providers`
calls provider hooks one by one; a failure is logged with the plugin's name and never raised (STYLE 11;
DESIGN "observers are isolated"). Decision hooks (authorise) are *not* events: they fail closed, elsewhere.
"""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger(__name__)


def notify(hook: Any, event: str, /, **kwargs: Any) -> int:
    """Call every implementation of the event hook ``event`` with ``kwargs``; returns how many failed.

    Args:
        hook: the plugin manager's hook relay (``pm.hook``).
        event: the hook's name, e.g. ``"modelyard_on_prediction"``.
        kwargs: the hook's arguments (by name, as every hook is called).

    Each implementation receives only the arguments it names (pluggy's rule). An exception in one is logged
    with the implementing plugin's name and the others still run; ``BaseException`` (KeyboardInterrupt) is not
    swallowed.
    """
    caller = getattr(hook, event)
    failed = 0
    # Newest registration first, as pluggy orders them; trylast/tryfirst are honoured by that order.
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue  # wrappers wrap a pluggy call; an isolated event has none to wrap
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception as exc:
            failed += 1
            log.error("event observer failed", hook=event, plugin=impl.plugin_name,
                      error=f"{type(exc).__name__}: {exc}"[:500], exc_info=True)
    return failed


__all__ = ["notify"]
