"""Module factories: which ``options["module_factory"]`` a registration may name, and importing the allowed ones.

A factory is code the server imports and calls, so a request can only *name* one that config allows:

- ``"pkg.module:callable"`` matching a glob in ``[builders.torch] module_factories`` (e.g. ``"ranker.model:*"``),
  imported from the folders in ``[builders.torch] module_paths`` (relative to the config file) or from the
  installed packages;
- or the name of an entry point in the ``modelyard.module_factories`` group, which an installed distribution
  declares (installing it is the administrator's decision).

:func:`authorise` decides from the strings alone — nothing is imported before a reference is allowed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import importlib.metadata
import re
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from modelyard.errors import BuildError, InvalidInput

#: The entry-point group whose entries registrations may name by their name.
ENTRY_POINT_GROUP = "modelyard.module_factories"
FIELD = "options.module_factory"

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_REF = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")
_EP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# sys.path is process-wide: two in-process builds must not interleave their additions.
_PATH_LOCK = threading.RLock()


@attrs.frozen
class Allowed:
    """A reference that config allows: ``module:callable`` text, or the entry point it names."""

    ref: str
    entry_point: importlib.metadata.EntryPoint | None = None


def _how_to_allow(ref: str) -> str:
    module = ref.partition(":")[0] if ":" in ref else "pkg.module"
    return (f"to allow it, add a glob over \"module:callable\" to [builders.torch] module_factories "
            f"(e.g. module_factories = [\"{module}:*\"]), with module_paths naming the folder it lives in when it "
            f"is not installed — or install it as an entry point in the {ENTRY_POINT_GROUP!r} group and send "
            "the entry point's name")


def authorise(ref: Any, patterns: Sequence[str]) -> Allowed:
    """Check a requested factory against config and the installed entry points, importing nothing.

    Raises :class:`InvalidInput` (HTTP 422) naming ``options.module_factory`` and saying how to allow it.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidInput(f"options['module_factory'] must be 'pkg.module:callable' or an entry point name, "
                           f"got {ref!r}", field=FIELD)
    if ":" not in ref:
        if not _EP_NAME.match(ref):
            raise InvalidInput(f"options['module_factory'] {ref!r} is neither 'pkg.module:callable' nor an entry "
                               "point name", field=FIELD)
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP).select(name=ref)
        for entry_point in found:
            return Allowed(ref=entry_point.value, entry_point=entry_point)
        installed = sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        raise InvalidInput(f"options['module_factory'] {ref!r} is not an installed entry point in the "
                           f"{ENTRY_POINT_GROUP!r} group (installed: {', '.join(installed) or 'none'}); "
                           + _how_to_allow(ref), field=FIELD)
    if not _REF.match(ref):
        raise InvalidInput(f"options['module_factory'] must be 'pkg.module:callable' (dotted names), got {ref!r}",
                           field=FIELD)
    if any(part.startswith("_") for part in ref.partition(":")[2].split(".")):
        raise InvalidInput(f"options['module_factory'] {ref!r} names a private attribute; name a public callable",
                           field=FIELD)
    if not any(fnmatch.fnmatchcase(ref, pattern) for pattern in patterns):
        allowed = f"allowed now: {', '.join(patterns)}" if patterns else "none is allowed now"
        raise InvalidInput(f"options['module_factory'] {ref!r} is not allowed: the server imports only module "
                           f"factories its config allows ({allowed}); " + _how_to_allow(ref), field=FIELD)
    return Allowed(ref=ref)


@contextlib.contextmanager
def importable_from(paths: Sequence[str]) -> Iterator[None]:
    """``paths`` at the front of ``sys.path`` for the duration (removed again after: the folders config names
    are for module factories, not for the whole process)."""
    with _PATH_LOCK:
        added = [p for p in paths if p not in sys.path]
        sys.path[:0] = added
        if added:
            importlib.invalidate_caches()
        try:
            yield
        finally:
            for p in added:
                with contextlib.suppress(ValueError):
                    sys.path.remove(p)


def load(allowed: Allowed) -> Any:
    """Import an allowed factory (call inside :func:`importable_from`); BuildError when it cannot be."""
    ref = allowed.ref
    try:
        if allowed.entry_point is not None:
            target: Any = allowed.entry_point.load()
        else:
            module, _, attr = ref.partition(":")
            target = importlib.import_module(module)
            for part in attr.split("."):
                target = getattr(target, part)
                if isinstance(target, types.ModuleType):
                    # "pkg.mod:os.abort" would walk out of the allowed module into whatever it imported.
                    raise BuildError(f"options['module_factory'] {ref!r} names a module, not a callable defined "
                                     f"in {module!r}")
    except (ImportError, AttributeError) as exc:
        raise BuildError(f"options['module_factory'] {ref!r} cannot be imported: {exc}") from None
    if not callable(target):
        raise BuildError(f"options['module_factory'] {ref!r} is not callable")
    return target


__all__ = ["ENTRY_POINT_GROUP", "Allowed", "authorise", "importable_from", "load"]
