"""The plugin manager factory, entry-point discovery and provider collection.

There is no module-global plugin manager (STYLE 4): every Platform, CLI run and test gets its own from
:func:`get_plugin_manager`. Built-in plugins are found through the ``modelyard`` entry-point group exactly like
third-party ones (STYLE 1).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any

import attrs
import pluggy
import structlog

from modelyard.actions import Action, ActionEntry, Catalogue
from modelyard.errors import PluginError
from modelyard.hookspecs import SPEC_MODULES
from modelyard.hookspecs.markers import PROJECT
from modelyard.jobs import JobKind, JobKindEntry
from modelyard.providers import SLOTS, Provider

log = structlog.get_logger(__name__)

ENTRYPOINT_GROUP = "modelyard"
#: Plugins that cannot be disabled: without them config interpolation has nothing to fall back on.
ESSENTIAL = frozenset({"secrets"})


class PluginLoadWarning(UserWarning):
    """A third-party plugin failed to load; it becomes an error only if the config uses it."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``modelyard plugins`` shows for one plugin."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    hooks: tuple[str, ...]
    builtin: bool


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what we learnt while loading: distributions, broken and disabled plugins."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.distributions: dict[str, tuple[str | None, str | None]] = {}
        self.broken: dict[str, str] = {}
        self.disabled: set[str] = set()

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version and implemented hooks, sorted by name."""
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.get_hookcallers(plugin) or ()))
            dist, version = self.distributions.get(name, (None, None))
            module = getattr(plugin, "__name__", type(plugin).__module__ + "." + type(plugin).__qualname__)
            infos.append(PluginInfo(name=name, distribution=dist, version=version, module=module, hooks=hooks,
                                    builtin=dist == "modelyard"))
        return sorted(infos, key=lambda i: i.name)


def disabled_from_env(environ: Mapping[str, str] | None = None) -> set[str]:
    """Plugin names listed in ``MODELYARD_DISABLE_PLUGINS`` (comma separated)."""
    raw = (environ if environ is not None else os.environ).get("MODELYARD_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def get_plugin_manager(
    *,
    load_entrypoints: bool = True,
    disable: Iterable[str] = (),
    plugins: Iterable[Any] = (),
    trace: bool | None = None,
) -> PluginManager:
    """Build a fresh plugin manager.

    Args:
        load_entrypoints: discover plugins in the ``modelyard`` entry-point group (built-ins included).
        disable: plugin names to block, added to ``MODELYARD_DISABLE_PLUGINS``.
        plugins: extra plugin objects (modules, classes or instances) to register, e.g. in tests; a
            ``(name, plugin)`` tuple sets the name.
        trace: trace every hook call to the debug log; defaults to ``MODELYARD_TRACE_PLUGINS=1``.
    """
    pm = PluginManager()
    for module in SPEC_MODULES:
        pm.add_hookspecs(module)

    disabled = set(disable) | disabled_from_env()
    refused = disabled & ESSENTIAL
    if refused:
        raise PluginError(f"cannot disable essential plugin(s): {', '.join(sorted(refused))}")
    pm.disabled = disabled
    for name in disabled:
        pm.set_blocked(name)

    if load_entrypoints:
        _load_entrypoints(pm)
    for plugin in plugins:
        name, obj = plugin if isinstance(plugin, tuple) else (None, plugin)
        if name is not None and name in disabled:
            continue
        pm.register(obj, name=name)
    pm.check_pending()

    if trace if trace is not None else os.environ.get("MODELYARD_TRACE_PLUGINS") == "1":
        pm.trace.root.setwriter(lambda msg: log.debug("plugin-trace", message=msg.rstrip()))
        pm.enable_tracing()
    return pm


def _load_entrypoints(pm: PluginManager) -> None:
    for ep in metadata.entry_points(group=ENTRYPOINT_GROUP):
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the platform down unless it is used
            reason = f"{type(exc).__name__}: {exc}"
            pm.broken[ep.name] = reason
            pm.distributions[ep.name] = (dist, version)
            if dist == "modelyard":
                raise PluginError(f"Error loading built-in plugin {ep.name!r}: {reason}") from exc
            warnings.warn(f"Error loading plugin {ep.name!r} from {dist}: {reason}", PluginLoadWarning,
                          stacklevel=2)
            continue
        pm.register(plugin, name=ep.name)
        pm.distributions[ep.name] = (dist, version)


@attrs.frozen(kw_only=True)
class ProviderEntry:
    """A provider and the plugin (and distribution) that offered it."""

    provider: Provider
    plugin: str
    distribution: str | None


def _offered(pm: PluginManager, hooks: Iterable[str], record: type) -> Iterator[tuple[Any, str, str | None]]:
    """Call every implementation of ``hooks`` on its own; yield (record, plugin, distribution) for each record.

    One call per implementation (not ``pm.hook.x()``) so that a failure or a wrong record names its plugin.
    """
    for hook in hooks:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            dist = getattr(pm, "distributions", {}).get(plugin_name, (None, None))[0]
            try:
                records = list(impl.function() or ())
            except Exception as exc:
                raise PluginError(f"plugin {plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}") from exc
            for item in records:
                if not isinstance(item, record):
                    raise PluginError(f"plugin {plugin_name!r}: {hook} must yield {record.__name__} records, "
                                      f"got {type(item).__name__}")
                yield item, plugin_name, dist


def _conflict(what: str, other_plugin: str, other_dist: str | None, plugin: str, dist: str | None) -> PluginError:
    return PluginError(
        f"Conflicting plugins found: {what} is offered by plugin {other_plugin!r} "
        f"({other_dist or 'not from a distribution'}) and plugin {plugin!r} ({dist or 'not from a distribution'}); "
        "uninstall or disable one of them (MODELYARD_DISABLE_PLUGINS or [platform] disable)"
    )


def collect_providers(pm: PluginManager) -> dict[str, dict[str, ProviderEntry]]:
    """Call every provider hook and index the results by slot and name.

    A slot's providers come from its hook and from the hook's deprecated former names (``Slot.hooks``; pluggy
    warned when such a plugin was registered). Raises :class:`PluginError` for a record of the wrong type or two
    providers with one name, naming the plugins and distributions that ship them (STYLE 9).
    """
    out: dict[str, dict[str, ProviderEntry]] = {}
    for slot in SLOTS.values():
        entries: dict[str, ProviderEntry] = {}
        for record, plugin_name, dist in _offered(pm, slot.hooks, slot.record):
            if record.name in entries:
                other = entries[record.name]
                raise _conflict(f"{slot.name} provider {record.name!r}", other.plugin, other.distribution,
                                plugin_name, dist)
            entries[record.name] = ProviderEntry(provider=record, plugin=plugin_name, distribution=dist)
        out[slot.name] = dict(sorted(entries.items()))
    return out


def collect_job_kinds(pm: PluginManager) -> dict[str, JobKindEntry]:
    """Call ``modelyard_job_kinds`` on every plugin and index the kinds by name.

    Raises :class:`PluginError` for a record that is not a :class:`~modelyard.jobs.JobKind` or two kinds with one
    name, naming the plugins and distributions that ship them.
    """
    entries: dict[str, JobKindEntry] = {}
    for kind, plugin_name, dist in _offered(pm, ("modelyard_job_kinds",), JobKind):
        if kind.name in entries:
            other = entries[kind.name]
            raise _conflict(f"job kind {kind.name!r}", other.plugin, other.distribution, plugin_name, dist)
        entries[kind.name] = JobKindEntry(kind=kind, plugin=plugin_name, distribution=dist)
    return dict(sorted(entries.items()))


def collect_actions(pm: PluginManager) -> Catalogue:
    """The action catalogue: the core's actions plus every plugin's from ``modelyard_actions``.

    Raises :class:`PluginError` for a record that is not an :class:`~modelyard.actions.Action` or two actions
    with one name (a plugin's and the core's included), naming the plugins and distributions that offer them.
    """
    core = Catalogue.core().entries.values()
    offered = (ActionEntry(action=action, plugin=plugin_name, distribution=dist)
               for action, plugin_name, dist in _offered(pm, ("modelyard_actions",), Action))
    return Catalogue.of([*core, *offered])
