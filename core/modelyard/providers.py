"""Provider records: what a plugin offers to fill a slot, and the table of slots.

A plugin's provider hook (``modelyard_registry_backends``, ``modelyard_runtimes``, …) yields one frozen record
per provider: its name, a factory, the attrs class of its config section and what it needs installed. The core
validates each record at assembly (STYLE 9) and calls the factory with the typed config (STYLE 12).

Provider hooks are named by one rule (STYLE 6): ``modelyard_`` and the plural, in snake case, of what the
providers' factories return — the slot's Protocol (``Authenticator`` → ``modelyard_authenticators``,
``ArtifactStore`` → ``modelyard_artifact_stores``). A slot whose services have no Protocol of their own (monitors,
which implement event hooks) is named for its role. Hooks renamed to follow the rule keep their old name for one
release (:attr:`Slot.deprecated_hooks`): pluggy warns when a plugin implements it, and providers are still
collected from it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from modelyard.names import check_provider_name

if TYPE_CHECKING:
    import pluggy

    from modelyard.config import ResolvedConfig
    from modelyard.platform import Platform


@attrs.frozen
class NoConfig:
    """The config schema of a provider that takes no options."""


@attrs.frozen(kw_only=True)
class ProviderContext:
    """What a provider's factory receives besides its typed config.

    ``config`` is the whole resolved config (plain data: the platform section's limits, ``base_dir`` for
    relative paths). ``services`` holds exactly the services the provider declared in its record's ``needs``
    — earlier slots by name (``"registry"``, ``"storage"``, ``"builders"``, …; slots are built in dependency
    order: secrets, registry, storage, builders, scheduler, runtime, monitors, auth, billing) and
    ``"loader"``, the :class:`~modelyard.hookspecs.runtime.Loader` that turns a plain ``BundleSource`` into a
    loaded model in this process. ``platform`` is set only for a provider that declares ``needs=("platform",)``
    (a scheduler running jobs against the whole platform); everyone else gets what it asked for, not a
    half-built Platform.
    """

    slot: str
    provider: str
    data_dir: Path
    hook: Any  # pluggy.HookRelay — call other plugins' hooks
    plugin_manager: pluggy.PluginManager
    config: ResolvedConfig | None = None
    services: Mapping[str, Any] = attrs.field(factory=dict)
    platform: Platform | None = None


@attrs.frozen(kw_only=True)
class Provider:
    """Base record: ``factory(config, ctx)`` returns the service that fills the slot.

    ``requires`` lists importable module names that must be present (checked without importing them); when one
    is missing the error tells the user ``pip install 'modelyard[<extra>]'``.
    """

    name: str = attrs.field(validator=lambda _i, _a, v: check_provider_name(v))
    factory: Callable[[Any, ProviderContext], Any]
    config_schema: type = NoConfig
    description: str = ""
    requires: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    extra: str | None = None
    #: Optional static check of a converted config, run by ``modelyard check`` and at assembly before anything
    #: starts: ``check(config)`` yields ``(key, message)`` problems (e.g. a URL scheme whose driver is missing).
    #: It must not connect to anything.
    check: Callable[[Any], Iterable[tuple[str | None, str]]] | None = None
    #: The services the factory needs (``ProviderContext.services``): names of earlier slots, ``"loader"``,
    #: or ``"platform"`` for the whole Platform.
    needs: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    slot: str = attrs.field(default="", init=False)

    def missing_requirements(self) -> list[str]:
        """Modules in ``requires`` that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def install_hint(self) -> str:
        """How to install what this provider needs."""
        return f"pip install 'modelyard[{self.extra}]'" if self.extra else "pip install " + " ".join(self.requires)


def _slot(name: str) -> Any:
    return attrs.field(default=name, init=False)


@attrs.frozen(kw_only=True)
class RegistryProvider(Provider):
    """Fills the ``registry`` slot with a :class:`~modelyard.hookspecs.registry.RegistryBackend`."""

    slot: str = _slot("registry")


@attrs.frozen(kw_only=True)
class StorageProvider(Provider):
    """Fills the ``storage`` slot with a :class:`~modelyard.hookspecs.storage.ArtifactStore`."""

    slot: str = _slot("storage")


@attrs.frozen(kw_only=True)
class SecretsProvider(Provider):
    """Fills the ``secrets`` slot with a :class:`~modelyard.hookspecs.secrets.SecretStore`."""

    slot: str = _slot("secrets")


@attrs.frozen(kw_only=True)
class BuilderProvider(Provider):
    """Offers a :class:`~modelyard.hookspecs.builder.Builder` for one flavor; the provider name is the flavor."""

    slot: str = _slot("builders")


@attrs.frozen(kw_only=True)
class SchedulerProvider(Provider):
    """Fills the ``scheduler`` slot with a :class:`~modelyard.hookspecs.scheduler.Scheduler`."""

    slot: str = _slot("scheduler")


@attrs.frozen(kw_only=True)
class RuntimeProvider(Provider):
    """Fills the ``runtime`` slot with a :class:`~modelyard.hookspecs.runtime.Runtime`."""

    slot: str = _slot("runtime")


@attrs.frozen(kw_only=True)
class MonitorProvider(Provider):
    """Offers a monitor: the factory's result is registered as a plugin, so it implements event hooks."""

    slot: str = _slot("monitors")


@attrs.frozen(kw_only=True)
class AuthProvider(Provider):
    """Fills the ``auth`` slot with an :class:`~modelyard.hookspecs.auth.Authenticator`."""

    slot: str = _slot("auth")


@attrs.frozen(kw_only=True)
class BillingProvider(Provider):
    """Fills the ``billing`` slot with a :class:`~modelyard.hookspecs.billing.Meter`; also registered as a plugin."""

    slot: str = _slot("billing")


@attrs.frozen(kw_only=True)
class ConfigSection:
    """A top-level config section a plugin adds, e.g. ``[server]``, validated against ``schema`` (attrs).

    Yielded by ``modelyard_config_sections``.
    """

    name: str
    schema: type
    description: str = ""


@attrs.frozen(kw_only=True)
class Slot:
    """A role in the platform: which hook offers its providers, whether it takes many, and its default.

    ``protocol`` is the ``module:Name`` of the Protocol the providers' factories return (None for monitors);
    ``deprecated_hooks`` are former names of ``hook`` that still offer providers, with a DeprecationWarning, for
    one release.
    """

    name: str
    hook: str
    many: bool
    default: tuple[str, ...]
    description: str
    record: type[Provider]
    protocol: str | None = None
    deprecated_hooks: tuple[str, ...] = ()

    @property
    def hooks(self) -> tuple[str, ...]:
        """The hook and its deprecated names: every hook whose implementations offer this slot's providers."""
        return (self.hook, *self.deprecated_hooks)


# Assembly order matters: each slot may use the ones listed before it.
SLOTS: dict[str, Slot] = {
    s.name: s
    for s in (
        Slot(name="secrets", hook="modelyard_secret_stores", many=False, default=("env",),
             description="read secrets for ${secret:path#key}", record=SecretsProvider,
             protocol="modelyard.hookspecs.secrets:SecretStore"),
        Slot(name="registry", hook="modelyard_registry_backends", many=False, default=("sql",),
             description="models, versions, aliases, deployments, audit records", record=RegistryProvider,
             protocol="modelyard.hookspecs.registry:RegistryBackend", deprecated_hooks=("modelyard_registries",)),
        Slot(name="storage", hook="modelyard_artifact_stores", many=False, default=("fsspec",),
             description="content-addressed artifacts", record=StorageProvider,
             protocol="modelyard.hookspecs.storage:ArtifactStore", deprecated_hooks=("modelyard_storages",)),
        Slot(name="builders", hook="modelyard_builders", many=True, default=(),
             description="turn an upload into a validated bundle, one per flavor", record=BuilderProvider,
             protocol="modelyard.hookspecs.builder:Builder"),
        Slot(name="scheduler", hook="modelyard_schedulers", many=False, default=("local",),
             description="run jobs: build, batch predict, evaluate", record=SchedulerProvider,
             protocol="modelyard.hookspecs.scheduler:Scheduler"),
        Slot(name="runtime", hook="modelyard_runtimes", many=False, default=("local",),
             description="deploy bundles and serve predictions", record=RuntimeProvider,
             protocol="modelyard.hookspecs.runtime:Runtime"),
        Slot(name="monitors", hook="modelyard_monitors", many=True, default=("log",),
             description="observe predictions and events", record=MonitorProvider),
        Slot(name="auth", hook="modelyard_authenticators", many=False, default=("anonymous",),
             description="authenticate requests and authorise actions", record=AuthProvider,
             protocol="modelyard.hookspecs.auth:Authenticator", deprecated_hooks=("modelyard_auth_providers",)),
        Slot(name="billing", hook="modelyard_meters", many=False, default=("none",),
             description="meter usage and report it", record=BillingProvider,
             protocol="modelyard.hookspecs.billing:Meter", deprecated_hooks=("modelyard_billing_providers",)),
    )
}  # fmt: skip
