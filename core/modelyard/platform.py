"""``Platform``: the assembled platform — the integrators' entry point, and what the server and CLI call."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from modelyard import log as logconf
from modelyard.actions import Catalogue
from modelyard.bridge import SyncBridge
from modelyard.config import (
    ResolvedConfig,
    SlotChoice,
    _validate_choice,
    env_resolver,
    interpolate,
    load_raw,
    validate,
)
from modelyard.errors import (
    ConfigError,
    ConfigIssue,
    Forbidden,
    InvalidInput,
    ModelyardError,
    NotFound,
    PluginError,
    Unavailable,
)
from modelyard.events import notify
from modelyard.isolation import close_builds
from modelyard.names import check_name
from modelyard.plugins import (
    PluginManager,
    ProviderEntry,
    collect_actions,
    collect_providers,
    get_plugin_manager,
)
from modelyard.providers import SLOTS, ProviderContext
from modelyard.reconcile import Reconciler
from modelyard.registry import ModelRegistry
from modelyard.scratch import Scratch, sweep_partials
from modelyard.types import (
    LOCAL,
    MAX_REPLICAS,
    AuditEvent,
    BatchingConfig,
    Deployment,
    ModelRef,
    ModelVersion,
    Prediction,
    PredictionEvent,
    Principal,
    ServingState,
    Signature,
)

if TYPE_CHECKING:
    from modelyard.hookspecs.auth import Authenticator
    from modelyard.hookspecs.billing import Meter
    from modelyard.hookspecs.builder import Builder
    from modelyard.hookspecs.registry import RegistryBackend
    from modelyard.hookspecs.runtime import Runtime
    from modelyard.hookspecs.scheduler import Scheduler
    from modelyard.hookspecs.secrets import SecretStore
    from modelyard.hookspecs.storage import ArtifactStore
    from modelyard.loading import BundleLoader
    from modelyard.types import BundleSource

log = structlog.get_logger(__name__)


def _secret_resolver(store: Any) -> Any:
    def resolve(kind: str, ref: str) -> str:
        if kind != "secret":
            return f"${{{kind}:{ref}}}"
        path, sep, key = ref.partition("#")
        if not sep or not path or not key:
            raise LookupError(f"secret reference {ref!r}: expected ${{secret:path#key}}")
        if store is None:
            raise LookupError(f"cannot resolve ${{secret:{ref}}}: the [secrets] section is invalid")
        try:
            value = store.get(path, key)
        except ModelyardError as exc:
            raise LookupError(str(exc)) from None
        logconf.register_secret(value)
        return value

    return resolve


def resolve(source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
            plugin_manager: PluginManager | None = None,
            environ: Mapping[str, str] | None = None) -> ResolvedConfig:
    """Load, interpolate and validate a config — no service is left running: the one pass of assembly.

    All problems — unknown sections or keys, unknown providers, wrong types, unresolvable references — are
    raised together as one :class:`ConfigError`. This is what ``modelyard check`` runs; hand the result to
    :meth:`Platform.from_resolved` to assemble it (``serve`` does exactly that, resolving once). The secrets
    provider is started only to resolve ``${secret:…}`` references and is closed again before this returns.
    The plugin manager used is ``result.plugin_manager``.
    """
    resolved, _pm, secret_store = _resolve(source, plugin_manager=plugin_manager, environ=environ)
    if secret_store is not None:
        secret_store.close()
    return resolved


def resolve_config(source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
                   plugin_manager: PluginManager | None = None,
                   environ: Mapping[str, str] | None = None) -> tuple[ResolvedConfig, PluginManager, Any]:
    """Deprecated: :func:`resolve` — returns ``(config, plugin manager, None)`` (no secret store is kept)."""
    resolved = resolve(source, plugin_manager=plugin_manager, environ=environ)
    return resolved, resolved.plugin_manager, None


def _resolve(source: str | os.PathLike[str] | Mapping[str, Any] | None, *, plugin_manager: PluginManager | None,
             environ: Mapping[str, str] | None) -> tuple[ResolvedConfig, PluginManager, Any]:
    raw = load_raw(source)
    data, env_errors = interpolate(raw.data, env_resolver(os.environ if environ is None else environ))
    issues = [_ref_issue(raw, path, msg) for path, msg in env_errors]

    if plugin_manager is None:
        disable = data.get("platform", {}).get("disable", []) if isinstance(data.get("platform"), dict) else []
        plugin_manager = get_plugin_manager(disable=[d for d in disable if isinstance(d, str)])
    providers = collect_providers(plugin_manager)

    # The secrets section is built first (with env interpolation only) so ${secret:…} can be resolved elsewhere.
    secrets_section = data.get("secrets", {})
    secret_store = None
    available = {n: e.provider for n, e in providers["secrets"].items()}
    choice, found = _validate_choice("secrets", secrets_section if isinstance(secrets_section, dict) else {},
                                     available, SLOTS["secrets"].default, lines=raw.lines, file=raw.file,
                                     broken=plugin_manager.broken)
    if choice is not None and not found and "${secret:" not in repr(secrets_section):
        ctx = ProviderContext(slot="secrets", provider=choice.provider.name, data_dir=raw.base_dir,
                              hook=plugin_manager.hook, plugin_manager=plugin_manager)
        try:
            secret_store = choice.provider.factory(choice.config, ctx)
        except ModelyardError as exc:
            issues.append(ConfigIssue(message=f"cannot start secrets provider: {exc}", section="secrets",
                                      file=raw.file, line=raw.lines.get(("secrets", None))))
    rest = {k: v for k, v in data.items() if k != "secrets"}
    rest, secret_errors = interpolate(rest, _secret_resolver(secret_store))
    if "${secret:" in repr(secrets_section):
        issues.append(ConfigIssue(message="the [secrets] section cannot use ${secret:…}; use ${env:…}",
                                  section="secrets", file=raw.file, line=raw.lines.get(("secrets", None))))
    issues += [_ref_issue(raw, path, msg) for path, msg in secret_errors]
    rest["secrets"] = secrets_section
    extra = {s.name: s.schema for batch in plugin_manager.hook.modelyard_config_sections() for s in batch or ()}
    try:
        resolved = validate(attrs.evolve(raw, data=rest), providers, extra_sections=extra,
                            broken_plugins=plugin_manager.broken, disabled_plugins=plugin_manager.disabled)
    except ConfigError as exc:
        issues += exc.issues
    if issues:
        if secret_store is not None:
            secret_store.close()
        issues.sort(key=lambda i: i.line or 10**9)
        raise ConfigError(issues, file=raw.file or "config")
    return attrs.evolve(resolved, plugin_manager=plugin_manager), plugin_manager, secret_store


def _ref_issue(raw: Any, path: tuple[str, ...], message: str) -> ConfigIssue:
    section = path[0] if path else None
    key = ".".join(path[1:]) or None
    line = raw.lines.get((section, path[1] if len(path) > 1 else None)) or raw.lines.get((section, None))
    return ConfigIssue(message=message, section=section, key=key, line=line, file=raw.file)


class Platform:
    """The platform assembled from one config: every slot filled, validated up front.

    Use :meth:`from_config`; close it (or use it as a context manager) to release runtimes and connections.
    """

    def __init__(self) -> None:  # use from_config; assembly does I/O (STYLE 13)
        self.config: ResolvedConfig
        self.plugin_manager: PluginManager
        self.providers: dict[str, dict[str, ProviderEntry]] = {}
        self.data_dir: Path
        self.tmp_dir: Path
        self.scratch: Scratch
        # The slots, typed with their Protocols so mypy checks every use (set by from_resolved).
        self.secrets: SecretStore
        self.registry_backend: RegistryBackend
        self.storage: ArtifactStore
        self.builders: dict[str, Builder] = {}
        self.scheduler: Scheduler
        self.runtime: Runtime
        self.monitors: list[Any] = []  # monitors have no Protocol: they implement event hooks
        self.auth: Authenticator
        self.billing: Meter
        #: Every action authorisation and audit know: the core's and the plugins' (``modelyard_actions``).
        self.actions: Catalogue = Catalogue.core()
        #: Who acts when a verb is called without a principal (Python, the embedded CLI, jobs).
        self.local_principal: Principal = LOCAL
        self.registry = ModelRegistry(self)
        self.reconciler = Reconciler(self)
        self._closed = False
        self._built: list[Any] = []
        self._fetch_dir: Path

    # ------------------------------------------------------------------------------------------- assembly
    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
                    plugin_manager: PluginManager | None = None,
                    environ: Mapping[str, str] | None = None) -> Platform:
        """Assemble a platform from a TOML file path, a dict, or the default locations:
        ``Platform.from_resolved(resolve(source))``.

        Raises :class:`~modelyard.errors.ConfigError` with every problem at once, or
        :class:`~modelyard.errors.PluginError` naming the provider that failed to start.
        """
        return cls.from_resolved(resolve(source, plugin_manager=plugin_manager, environ=environ))

    @classmethod
    def from_resolved(cls, resolved: ResolvedConfig) -> Platform:
        """Assemble a platform from a config :func:`resolve` returned (it is not resolved again): every slot is
        built in dependency order, each provider receiving the services it declares it needs."""
        pm = resolved.plugin_manager
        if pm is None:
            raise ValueError("from_resolved needs a config from modelyard.platform.resolve (it has no plugin manager)")
        self = cls()
        self.config = resolved
        self.plugin_manager = pm
        self.providers = collect_providers(pm)
        self.actions = collect_actions(pm)
        logconf.configure(resolved.platform.log_level, resolved.platform.log_format)
        data_dir = Path(resolved.platform.data_dir).expanduser()
        self.data_dir = (data_dir if data_dir.is_absolute() else resolved.base_dir / data_dir).resolve()
        self._fetch_dir = self.data_dir / "cache"
        for d in (self.data_dir, self._fetch_dir):
            d.mkdir(parents=True, exist_ok=True)
        # This process's own scratch directory, locked for its life; opening it sweeps what crashed processes
        # left behind (never a live process's files, whoever shares the data dir).
        self.scratch = Scratch.open(self.data_dir)
        self.tmp_dir = self.scratch.path
        sweep_partials(self._fetch_dir)
        self._built.append(self.scratch)  # closed (removed) last
        try:
            for slot in SLOTS.values():
                services = [self._build(choice) for choice in resolved.slots[slot.name]]
                if slot.name == "builders":
                    self.builders = {c.provider.name: s for c, s in zip(resolved.slots[slot.name], services,
                                                                         strict=True)}
                elif slot.name == "monitors":
                    self.monitors = services
                    for choice, service in zip(resolved.slots[slot.name], services, strict=True):
                        self._register_observer(f"monitor:{choice.provider.name}", service)
                elif slot.name == "billing":
                    self.billing = services[0]
                    self._register_observer(f"billing:{resolved.one('billing').provider.name}", services[0])
                else:
                    setattr(self, {"registry": "registry_backend"}.get(slot.name, slot.name), services[0])
            pm.hook.modelyard_after_startup(platform=self)
        except BaseException:
            self._close_built()
            raise
        log.debug("platform assembled", data_dir=str(self.data_dir),
                  providers={s: [c.provider.name for c in cs] for s, cs in resolved.slots.items()})
        return self

    def _service(self, name: str) -> Any:
        """A service a provider may declare in ``needs``: an earlier slot's, the loader, or the platform."""
        if name == "platform":
            return self
        if name == "loader":
            return self.loader
        if name in ("registry", "registry_backend"):
            return self.registry_backend
        if name in SLOTS and name not in ("monitors",):
            return getattr(self, name)
        raise PluginError(f"unknown service {name!r} in a provider's needs; known: platform, loader, "
                          + ", ".join(n for n in SLOTS if n != "monitors"))

    def _build(self, choice: SlotChoice) -> Any:
        needs = choice.provider.needs
        services = {name: self._service(name) for name in needs}
        # A secrets provider reads paths relative to the config file (it is built before the data dir is known
        # when ${secret:…} references are resolved, and stays consistent here).
        data_dir = self.config.base_dir if choice.slot == "secrets" else self.data_dir
        ctx = ProviderContext(slot=choice.slot, provider=choice.provider.name, data_dir=data_dir,
                              hook=self.plugin_manager.hook, plugin_manager=self.plugin_manager,
                              config=self.config, services=services,
                              platform=self if "platform" in needs else None)
        try:
            service = choice.provider.factory(choice.config, ctx)
        except ModelyardError as exc:
            raise PluginError(f"{choice.slot} provider {choice.provider.name!r} failed to start: {exc}") from exc
        except ImportError as exc:
            raise PluginError(f"{choice.slot} provider {choice.provider.name!r} failed to start: {exc} — "
                              f"{choice.provider.install_hint()}") from exc
        self._built.append(service)
        return service

    def _register_observer(self, name: str, service: Any) -> None:
        # Observers implement event hooks as methods; only register objects that implement any.
        if any(n.startswith("modelyard_") for n in dir(service)):
            self.plugin_manager.register(service, name=name)

    @property
    def hook(self) -> Any:
        """The plugin manager's hook relay."""
        return self.plugin_manager.hook

    # ------------------------------------------------------------------------------------------- builders
    def builder(self, flavor: str) -> Any:
        """The builder for ``flavor``; a clear error names installed flavors and the extra that adds this one."""
        if flavor in self.builders:
            return self.builders[flavor]
        entry = self.providers.get("builders", {}).get(flavor)
        if entry is not None and entry.provider.missing_requirements():
            raise InvalidInput(f"flavor {flavor!r} needs packages that are not installed: "
                               f"{entry.provider.install_hint()}", field="flavor")
        raise InvalidInput(f"flavor {flavor!r} has no builder; installed: {', '.join(sorted(self.builders)) or 'none'}",
                           field="flavor")

    # ------------------------------------------------------------------------------------------- deployments
    def resolve_for_deploy(self, model_ref: str | ModelRef) -> ModelVersion:
        """``NAME`` means the ``production`` alias when set, else the newest version.

        Not a checked verb: :meth:`deploy` calls it after deciding ``deployments:create``, and a request is
        decided once.
        """
        ref = ModelRef.parse(model_ref) if isinstance(model_ref, str) else model_ref
        if ref.version is None and ref.alias is None:
            model = self.registry_backend.get_model(ref.name)
            if "production" in model.aliases:
                ref = ModelRef(ref.name, alias="production")
        return self.registry_backend.resolve(ref)

    def bundle_source(self, version: ModelVersion) -> BundleSource:
        """The :class:`~modelyard.hookspecs.runtime.BundleSource` of a version: plain data (digest, flavor,
        signature, size, storage locator) that any process with this config loads through its :attr:`loader`.

        Raises :class:`~modelyard.errors.InvalidInput` when no builder here loads the version's flavor.
        """
        from modelyard.loading import locator_of
        from modelyard.types import BundleSource

        self.builder(version.flavor)  # fail here, naming the flavor and its extra, rather than in the runtime
        return BundleSource(model=version.model, version=version.number, flavor=version.flavor,
                            digest=version.artifact.digest, size=version.artifact.size,
                            signature=version.signature or Signature((), ()),
                            locator=locator_of(version.artifact.digest))

    def deploy(self, model_ref: str | ModelRef, *, name: str | None = None, runtime: str | None = None,
               batching: BatchingConfig | Mapping[str, Any] | None = None, replicas: int = 1,
               options: Mapping[str, Any] | None = None, principal: Principal | None = None,
               actor: str | None = None) -> Deployment:
        """Deploy a version under ``name`` (default: the model name), or move an existing deployment to it.

        ``principal`` must be allowed ``deployments:create`` on ``deployments/<name>`` (:meth:`require`; default:
        :attr:`local_principal`; ``actor`` is the deprecated way to name it), else
        :class:`~modelyard.errors.Forbidden` and nothing happens but a ``denied`` audit entry.

        The record is the desired state: it is written first (with its audit entry, in one transaction), then
        this process's runtime converges to it, and every other serving process within its poll interval.
        Returns once the deployment answers predictions here, with ``state="ready"``. When this process cannot
        bring it up, a first deploy stays recorded as ``failed`` with the reason, a redeploy's record goes back
        to the version that keeps serving (its message says what failed), and the error is raised. When the
        registry write fails nothing serves the new version anywhere.
        """
        principal = self._acting(principal, actor)
        ref = ModelRef.parse(model_ref) if isinstance(model_ref, str) else model_ref
        name = check_name(name or ref.name, field="name")  # the version resolved below is of model ref.name
        self.require(principal, "deployments:create", f"deployments/{name}")
        version = self.resolve_for_deploy(ref)
        configured = self.config.one("runtime").provider.name
        if runtime is not None and runtime != configured:
            raise InvalidInput(f"runtime {runtime!r} is not the configured runtime ({configured!r})", field="runtime")
        if isinstance(batching, Mapping):
            unknown = sorted(set(batching) - {f.name for f in attrs.fields(BatchingConfig)})
            if unknown:
                raise InvalidInput(f"batching: unknown field {unknown[0]!r}", field=f"batching.{unknown[0]}")
            try:
                batching = BatchingConfig(**batching)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"batching: {exc}", field="batching") from None
        if batching is not None and version.signature is not None:
            fixed = [t for t in version.signature.inputs if not t.shape or t.shape[0] != -1]
            if fixed:
                t = fixed[0]
                raise InvalidInput(
                    f"batching needs a dynamic first (batch) dimension, but input {t.name!r} of "
                    f"{version.model}:{version.number} has shape {list(t.shape)}; deploy without batching, or "
                    "export the model with a dynamic batch dimension", field="batching")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"replicas: expected an integer from 1 to {MAX_REPLICAS}, got {replicas!r:.40}",
                               field="replicas")
        details: dict[str, Any] = {"model": version.model, "version": version.number}
        resource = f"deployments/{name}"
        started = time.perf_counter()
        with self.reconciler.lock(name):
            try:
                previous: Deployment | None = self.registry_backend.get_deployment(name)
            except NotFound:
                previous = None
            wanted = Deployment(name=name, model=version.model, version=version.number, runtime=configured,
                                requested_ref=str(model_ref), batching=batching, replicas=replicas,
                                options=dict(options or {}), state="pending")
            try:
                record = self.registry_backend.put_deployment(
                    wanted, audit=self._audit_event("deployments:create", resource, principal, details=details))
            except BaseException as exc:
                self.audit("deployments:create", resource, principal, outcome="error",
                           error=f"{type(exc).__name__}: {exc}"[:500], **details)
                self._notify_error("deploy", exc, deployment=wanted)
                raise
            try:
                self.reconciler.converge(name, record, raise_errors=True, locked=True)
            except BaseException as exc:
                self._record_failed_deploy(record, previous, exc, principal, details)
                raise
            written = record
            if self.registry_backend.set_deployment_state(name, written.generation, "ready"):
                record = self.registry_backend.get_deployment(name)  # as stored: state and updated_at
                if record.generation != written.generation:  # changed again meanwhile: answer for ours
                    record = attrs.evolve(written, state="ready", message="")
            else:
                log.info("deployment changed while it was being deployed", deployment=name)
                record = attrs.evolve(record, state="ready", message="")
        log.info("deployed", deployment=name, model=version.model, version=version.number,
                 generation=record.generation, seconds=round(time.perf_counter() - started, 3))
        notify(self.hook, "modelyard_after_deployment_changed", deployment=record,
               change="updated" if previous else "deployed")
        return record

    def _record_failed_deploy(self, record: Deployment, previous: Deployment | None, exc: BaseException,
                              principal: Principal, details: Mapping[str, Any]) -> None:
        """A deploy failed here: record it, put back what keeps serving, tell observers ``failed``."""
        message = f"{type(exc).__name__}: {exc}"[:1000]
        audit = self._audit_event("deployments:create", f"deployments/{record.name}", principal, outcome="error",
                                  details={**details, "error": message[:500]})
        failed = attrs.evolve(record, state="failed", message=message)
        try:
            if previous is not None and self.reconciler.applied(record.name) is not None:
                # The previous version still serves here: it becomes the desired state again (a new
                # generation, so processes that already moved on come back), saying what failed.
                restored = attrs.evolve(previous, message=f"deploying {record.model}:{record.version} failed: "
                                        f"{message}")
                back = self.registry_backend.put_deployment(restored, audit=audit)
                self.reconciler.converge(record.name, back, locked=True)
            else:
                self.registry_backend.set_deployment_state(record.name, record.generation, "failed", message,
                                                           audit=audit)
        except Exception:
            log.error("could not record the failed deploy", deployment=record.name, exc_info=True)
        self._notify_error("deploy", exc, deployment=failed)
        notify(self.hook, "modelyard_after_deployment_changed", deployment=failed, change="failed")

    def _notify_error(self, operation: str, exc: BaseException, **context: Any) -> None:
        notify(self.hook, f"modelyard_on_{operation}_error", error=exc, **context)

    def undeploy(self, name: str, *, principal: Principal | None = None, actor: str | None = None) -> None:
        """Delete a deployment's record (with its audit entry), then take it down here; every other serving
        process takes it down within its poll interval.

        ``principal`` (default: :attr:`local_principal`) must be allowed ``deployments:delete`` on
        ``deployments/<name>``, else :class:`~modelyard.errors.Forbidden` and nothing happens but a ``denied``
        audit entry.
        """
        principal = self._acting(principal, actor)
        name = check_name(name, field="name")
        resource = f"deployments/{name}"
        self.require(principal, "deployments:delete", resource)
        with self.reconciler.lock(name):
            deployment = self.registry_backend.get_deployment(name)
            try:
                self.registry_backend.delete_deployment(
                    name, audit=self._audit_event("deployments:delete", resource, principal,
                                                  details={"model": deployment.model, "version": deployment.version}))
            except BaseException as exc:
                if not isinstance(exc, NotFound):
                    self.audit("deployments:delete", resource, principal, outcome="error",
                               error=f"{type(exc).__name__}: {exc}"[:500])
                self._notify_error("undeploy", exc, deployment=deployment)
                raise
            self.reconciler.converge(name, None, locked=True)
        notify(self.hook, "modelyard_after_deployment_changed", deployment=attrs.evolve(deployment, state="stopped"),
               change="undeployed")

    def deployments(self, *, principal: Principal | None = None) -> list[Deployment]:
        """Every deployment record (``deployments:read`` on ``deployments``)."""
        self.require(self._acting(principal, None), "deployments:read", "deployments")
        return self.registry_backend.list_deployments()

    def get_deployment(self, name: str, *, principal: Principal | None = None) -> Deployment:
        """One deployment record (``deployments:read`` on ``deployments/<name>``)."""
        name = check_name(name, field="name")
        self.require(self._acting(principal, None), "deployments:read", f"deployments/{name}")
        return self.registry_backend.get_deployment(name)

    def serving(self, name: str, *, principal: Principal | None = None) -> list[ServingState]:
        """Per live serving process: which version of ``name`` it serves, of which generation, and its state
        (``deployments:read`` on ``deployments/<name>``)."""
        name = check_name(name, field="name")
        self.require(self._acting(principal, None), "deployments:read", f"deployments/{name}")
        return self.reconciler.reports(name)

    def restore_deployments(self) -> list[Deployment]:
        """Converge this process's runtime to every record (server start). A deployment that cannot be brought
        up is recorded ``failed`` with the reason (and observers see ``failed``); the others still come up."""
        restored = []
        for report in self.reconciler.converge_all(force=True):
            try:
                dep = self.registry_backend.get_deployment(report.deployment)
            except NotFound:
                continue
            if report.state == "failed" and report.generation == dep.generation and report.version == dep.version:
                if self.registry_backend.set_deployment_state(dep.name, dep.generation, "failed", report.message):
                    dep = attrs.evolve(dep, state="failed", message=report.message)
                notify(self.hook, "modelyard_after_deployment_changed", deployment=dep, change="failed")
                continue
            if dep.state != "ready":
                self.registry_backend.set_deployment_state(dep.name, dep.generation, "ready")
                dep = attrs.evolve(dep, state="ready", message="")
            restored.append(dep)
            notify(self.hook, "modelyard_after_deployment_changed", deployment=dep, change="restored")
        return restored

    def predict(self, deployment: str, inputs: Mapping[str, Any], *,
                principal: Principal | None = None) -> dict[str, Any]:
        """Predict synchronously: numpy (or array-like) in, numpy out — the outputs of :meth:`predict_full`.

        Callable from any thread; see :meth:`predict_full` for how it runs.
        """
        outputs = self.predict_full(deployment, inputs, principal=principal).outputs
        return outputs if type(outputs) is dict else dict(outputs)

    def predict_full(self, deployment: str, inputs: Mapping[str, Any], *,
                     principal: Principal | None = None) -> Prediction:
        """Predict synchronously and return the whole :class:`~modelyard.types.Prediction`: outputs, the model and
        version that answered, rows, and the time spent queueing and in the model.

        The one sync facade over :meth:`apredict_full`: the calling thread drives an event loop of its own
        (:class:`~modelyard.bridge.SyncBridge`, made on first use and closed with the platform), so there is no
        thread hop and blocking callers share queues and batches with the server's. From a thread that already
        runs an event loop the call is served by a helper thread while that loop waits — ``await`` instead.
        """
        if self._closed:
            raise Unavailable("the platform is closed")
        return self._sync_bridge().run(self.apredict_full, deployment, inputs, principal=principal)

    async def apredict(self, deployment: str, inputs: Mapping[str, Any], *,
                       principal: Principal | None = None) -> dict:
        """Predict from async code: the outputs of :meth:`apredict_full`."""
        outputs = (await self.apredict_full(deployment, inputs, principal=principal)).outputs
        return outputs if type(outputs) is dict else dict(outputs)

    async def apredict_full(self, deployment: str, inputs: Mapping[str, Any], *,
                            principal: Principal | None = None, version: int | None = None) -> Prediction:
        """Predict from async code (the server's path) and return the whole :class:`~modelyard.types.Prediction`.

        One call into the runtime (which looks the deployment up once and checks ``inputs`` once, against the
        version that runs them), then one ``modelyard_on_prediction`` event, delivered to each observer on its
        own (:func:`modelyard.events.notify`), whatever the outcome. Raises what the runtime raises.

        With ``version``, the runtime answers NotFound — before the model runs — when the deployment serves
        another version. First, in memory, the one decision (``predict`` on ``deployments/<name>`` for ``principal``, default the
        local principal) and the billing quota (:meth:`check_predict`): a denied or over-quota request raises
        :class:`~modelyard.errors.Forbidden` / :class:`~modelyard.errors.QuotaExceeded` and emits no event.
        """
        principal = self.check_predict(principal, deployment)
        started = time.perf_counter()
        try:
            prediction = await (self.runtime.predict(deployment, inputs) if version is None
                                else self.runtime.predict(deployment, inputs, version=version))
        except BaseException as exc:
            self._emit(deployment, inputs, started, principal.id, None, exc)
            raise
        self._emit(deployment, inputs, started, principal.id, prediction, None)
        return prediction

    def _sync_bridge(self) -> SyncBridge:
        """The platform's one sync bridge, made on first use; closed with the platform (before the runtime)."""
        bridge = self.__dict__.get("_bridge")
        if bridge is None:
            mine = SyncBridge(name="modelyard-predict")
            bridge = self.__dict__.setdefault("_bridge", mine)  # atomic: one bridge even when threads race
            if bridge is mine:
                self._built.append(bridge)  # closed in reverse order of creation: before every slot
        return bridge

    @property
    def loader(self) -> BundleLoader:
        """Loads a :class:`~modelyard.hookspecs.runtime.BundleSource` in this process: fetch from this platform's
        storage into its cache (re-hashing a cached copy), load with its builders. Runtimes get it as
        ``ctx.services["loader"]``."""
        loader = self.__dict__.get("_loader")
        if loader is None:
            from modelyard.loading import BundleLoader

            loader = self.__dict__.setdefault("_loader", BundleLoader.from_platform(self))
        return loader

    def _emit(self, deployment: str, inputs: Mapping[str, Any], started: float, principal: str,
              prediction: Prediction | None, error: BaseException | None) -> None:
        # In memory only: one record, then each observer on its own; inputs/outputs by reference, for the call.
        latency = time.perf_counter() - started
        if prediction is not None:
            event = PredictionEvent(deployment=deployment, model=prediction.model, version=prediction.version,
                                    rows=prediction.rows, latency_s=latency, ok=True, principal=principal,
                                    at=time.time(), inputs=inputs, outputs=prediction.outputs)
        else:
            first = next(iter(inputs.values()), None) if isinstance(inputs, Mapping) else None
            shape = getattr(first, "shape", None)
            event = PredictionEvent(deployment=deployment, model="", version=0,
                                    rows=int(shape[0]) if shape else 1, latency_s=latency, ok=False,
                                    principal=principal, error=str(error)[:500] if error is not None else None,
                                    error_type=type(error).__name__ if error is not None else None,
                                    at=time.time(), inputs=inputs)
        notify(self.hook, "modelyard_on_prediction", event=event)
        # The data references are for the observers' call only: an observer that buffers events (a summary
        # every minute) must not pin every request's arrays until then.
        object.__setattr__(event, "inputs", None)
        object.__setattr__(event, "outputs", None)

    # ------------------------------------------------------------------------------------------- auth
    # The one decision point (DESIGN "One decision point"): every checked verb — registry, deployments, and the
    # predict path through check_predict — decides here, whichever interface called it (HTTP, CLI, Python,
    # scheduler). The server authenticates a request and hands its principal to the verb; it decides through
    # require itself only for routes whose handler calls no checking verb, so each request is decided once.
    def authorize(self, principal: Principal, action: str, resource: str) -> bool:
        """Decide whether ``principal`` may do ``action`` on ``resource``; no side effects (see :meth:`require`).

        ``action`` must be in :attr:`actions` (else :class:`~modelyard.actions.UnknownAction`: a misspelt action
        is a bug, not a deny). The auth provider decides first; then every ``modelyard_authorize``
        implementation may veto. Any ``False`` wins, and an exception in any decision denies (fails closed,
        STYLE 11). Cheap when the provider and hooks answer from memory: a dict lookup and the calls.
        """
        self.actions.get(action)  # UnknownAction, naming the closest actions, for a name not in the catalogue
        try:
            if not self.auth.authorize(principal, action, resource):
                return False
            votes = self.hook.modelyard_authorize(principal=principal, action=action, resource=resource)
        except Exception:
            log.error("authorisation hook failed; denying", action=action, resource=resource, exc_info=True)
            return False
        return not any(v is False for v in votes)

    def require(self, principal: Principal, action: str, resource: str) -> Principal:
        """:meth:`authorize`, raising :class:`~modelyard.errors.Forbidden` (HTTP 403) on a deny; ``principal``
        when allowed. A denied action that the catalogue audits is written to the audit log as ``denied``."""
        if self.authorize(principal, action, resource):
            return principal
        if self.actions.get(action).audited:
            self.audit(action, resource, principal, outcome="denied")
        raise Forbidden(f"{principal.id!r} may not {action} on {resource}", action=action, resource=resource)

    def check_predict(self, principal: Principal | None, deployment: str) -> Principal:
        """The predict path's checks, in memory: ``predict`` on ``deployments/<deployment>`` (:meth:`require`;
        ``predict`` is not audited, so a deny writes nothing), then the billing quota
        (:meth:`~modelyard.hookspecs.billing.Meter.check_quota`, which raises
        :class:`~modelyard.errors.QuotaExceeded`). Returns the principal acting (default:
        :attr:`local_principal`)."""
        principal = self.local_principal if principal is None else principal
        self.require(principal, "predict", "deployments/" + deployment)
        self.billing.check_quota(principal, deployment)
        return principal

    def _acting(self, principal: Principal | None, actor: str | None) -> Principal:
        """Who acts: ``principal``, else the deprecated ``actor`` (the local principal under that id), else the
        local principal."""
        if actor is not None:
            warnings.warn("actor= is deprecated: pass principal=Principal(id=...)", DeprecationWarning, stacklevel=3)
            if principal is None:
                return attrs.evolve(self.local_principal, id=actor)
        return self.local_principal if principal is None else principal

    # ------------------------------------------------------------------------------------------- misc
    def _audit_event(self, action: str, resource: str, principal: Principal | str, *, outcome: str = "ok",
                     details: Mapping[str, Any] | None = None) -> AuditEvent:
        """The audit record of ``action``, which must be in the catalogue (:class:`~modelyard.actions.UnknownAction`
        otherwise: audit and authorisation share one set of names)."""
        self.actions.get(action)
        return AuditEvent(action=action, resource=resource, outcome=outcome,  # type: ignore[arg-type]
                          principal=principal if isinstance(principal, str) else principal.id,
                          details=details or {})

    def audit(self, action: str, resource: str, principal: Principal | str, outcome: str = "ok",
              **details: Any) -> None:
        """Record ``action`` (a catalogue name; :class:`~modelyard.actions.UnknownAction` otherwise) in the
        registry's audit log; a failing write is logged, never raised."""
        event = self._audit_event(action, resource, principal, outcome=outcome, details=details)
        try:
            self.registry_backend.record_audit(event)
        except Exception:
            log.error("audit write failed", action=action, exc_info=True)

    def close(self) -> None:
        """Run shutdown hooks and close every slot, runtime first (idempotent)."""
        if self._closed:
            return
        self._closed = True
        close_builds(self)  # kill in-flight isolated builds
        self.reconciler.stop()
        try:
            self.hook.modelyard_before_shutdown(platform=self)
        except Exception:
            log.error("shutdown hook failed", exc_info=True)
        self._close_built()

    def _close_built(self) -> None:
        for service in reversed(self._built):
            close = getattr(service, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.error("error closing provider", service=type(service).__name__, exc_info=True)
        self._built.clear()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Platform", "resolve_config"]

