"""Lifecycle hooks: the platform has been assembled, or is about to close."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from modelyard.platform import Platform


@hookspec
def modelyard_after_startup(platform: Platform) -> None:
    """Run once the platform is assembled and every slot is filled.

    Called once per :class:`~modelyard.platform.Platform`, synchronously, at the end of
    ``Platform.from_config`` (the server calls it before accepting requests). An exception aborts assembly and
    is reported naming the plugin.

    Args:
        platform: the assembled platform.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_after_startup(platform):
                platform.scheduler.submit("acme.warm-caches", {"models": ["churn"]})
    """


@hookspec
def modelyard_before_shutdown(platform: Platform) -> None:
    """Run before the platform closes its slots.

    Called once, from ``Platform.close()``, before runtimes, schedulers and stores are closed. Exceptions are
    logged with the plugin's name and do not stop the shutdown.

    Args:
        platform: the platform being closed.

    Returns:
        Nothing; all implementations are called.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_before_shutdown(platform):
                exporter.flush()
    """
