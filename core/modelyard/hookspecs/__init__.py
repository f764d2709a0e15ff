"""Hook specifications, one module per concern (STYLE 5). The docs' hook reference is generated from them."""

from modelyard.hookspecs import (
    auth,
    billing,
    builder,
    lifecycle,
    monitor,
    registry,
    runtime,
    scheduler,
    secrets,
    server,
    storage,
)
from modelyard.hookspecs.markers import hookimpl, hookspec

#: Every module holding hookspecs, in the order the hook reference lists them.
SPEC_MODULES = (registry, storage, secrets, builder, scheduler, runtime, monitor, auth, billing, lifecycle, server)

__all__ = ["SPEC_MODULES", "hookimpl", "hookspec"]
