"""``Platform``: the assembled platform — the integrators' entry point, and what the server and CLI call."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import structlog

from modelyard import log as logconf
from modelyard.config import (
    ResolvedConfig,
    SlotChoice,
    _validate_choice,
    env_resolver,
    interpolate,
    load_raw,
    validate,
)
from modelyard.errors import ConfigError, ConfigIssue, InvalidInput, ModelyardError, NotFound, PluginError
from modelyard.names import check_name
from modelyard.plugins import PluginManager, ProviderEntry, collect_providers, get_plugin_manager
from modelyard.providers import SLOTS, ProviderContext
from modelyard.registry import ModelRegistry
from modelyard.types import (
    BatchingConfig,
    Deployment,
    ModelRef,
    ModelVersion,
    PredictionEvent,
    Signature,
    utcnow,
)

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


def resolve_config(source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
                   plugin_manager: PluginManager | None = None,
                   environ: Mapping[str, str] | None = None) -> tuple[ResolvedConfig, PluginManager, Any]:
    """Load, interpolate and validate a config; returns (config, plugin manager, built secret store).

    All problems — unknown sections or keys, unknown providers, wrong types, unresolvable references — are
    raised together as one :class:`ConfigError`. This is what ``modelyard check`` runs.
    """
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
                              hook=plugin_manager.hook, platform=None, plugin_manager=plugin_manager)  # type: ignore[arg-type]
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
    return resolved, plugin_manager, secret_store


def _ref_issue(raw: Any, path: tuple[str, ...], message: str) -> ConfigIssue:
    section = path[0] if path else None
    key = ".".join(path[1:]) or None
    line = raw.lines.get((section, path[1] if len(path) > 1 else None)) or raw.lines.get((section, None))
    return ConfigIssue(message=message, section=section, key=key, line=line, file=raw.file)


def _matches(path: Path, digest: str) -> bool:
    """Whether a file's sha256 is ``digest`` (streamed)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest() == digest


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
        self.secrets: Any = None
        self.registry_backend: Any = None
        self.storage: Any = None
        self.builders: dict[str, Any] = {}
        self.scheduler: Any = None
        self.runtime: Any = None
        self.monitors: list[Any] = []
        self.auth: Any = None
        self.billing: Any = None
        self.registry = ModelRegistry(self)
        self._closed = False
        self._built: list[Any] = []
        self._fetch_dir: Path

    # ------------------------------------------------------------------------------------------- assembly
    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
                    plugin_manager: PluginManager | None = None,
                    environ: Mapping[str, str] | None = None) -> Platform:
        """Assemble a platform from a TOML file path, a dict, or the default locations.

        Raises :class:`~modelyard.errors.ConfigError` with every problem at once, or
        :class:`~modelyard.errors.PluginError` naming the provider that failed to start.
        """
        resolved, pm, secret_store = resolve_config(source, plugin_manager=plugin_manager, environ=environ)
        self = cls()
        self.config = resolved
        self.plugin_manager = pm
        self.providers = collect_providers(pm)
        logconf.configure(resolved.platform.log_level, resolved.platform.log_format)
        data_dir = Path(resolved.platform.data_dir).expanduser()
        self.data_dir = (data_dir if data_dir.is_absolute() else resolved.base_dir / data_dir).resolve()
        self.tmp_dir = self.data_dir / "tmp"
        self._fetch_dir = self.data_dir / "cache"
        for d in (self.data_dir, self.tmp_dir, self._fetch_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets = secret_store
        if secret_store is not None:
            self._built.append(secret_store)
        try:
            for slot in SLOTS.values():
                if slot.name == "secrets":
                    continue
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

    def _build(self, choice: SlotChoice) -> Any:
        ctx = ProviderContext(slot=choice.slot, provider=choice.provider.name, data_dir=self.data_dir,
                              hook=self.plugin_manager.hook, platform=self, plugin_manager=self.plugin_manager)
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
        """``NAME`` means the ``production`` alias when set, else the newest version."""
        ref = ModelRef.parse(model_ref) if isinstance(model_ref, str) else model_ref
        if ref.version is None and ref.alias is None:
            model = self.registry.get_model(ref.name)
            if "production" in model.aliases:
                ref = ModelRef(ref.name, alias="production")
        return self.registry.get_version(ref)

    def bundle_source(self, version: ModelVersion) -> Any:
        """A :class:`~modelyard.hookspecs.runtime.BundleSource` for a version: fetch and load through its builder."""
        from modelyard.hookspecs.runtime import BundleSource

        builder = self.builder(version.flavor)
        cache = self._fetch_dir / version.artifact.digest

        def fetch(dest: Path | None = None) -> Path:
            target = Path(dest) if dest is not None else cache
            # A cached copy is re-hashed before use: the cache is plain files anyone on the host could change,
            # and artifacts are checked against their sha256 on every load (DESIGN, security defaults).
            if target.exists() and not _matches(target, version.artifact.digest):
                log.warning("cached artifact does not match its digest; fetching it again", path=str(target),
                            digest=version.artifact.digest)
                target.unlink()
            if not target.exists():
                self.storage.get(version.artifact.digest, target)
            return target

        def load(path: Path, options: Mapping[str, Any] | None = None) -> Any:
            return builder.load(path, signature=version.signature, options=options)

        return BundleSource(model=version.model, version=version.number, flavor=version.flavor,
                            digest=version.artifact.digest, size=version.artifact.size,
                            signature=version.signature or Signature((), ()), fetch=fetch, load=load)

    def deploy(self, model_ref: str | ModelRef, *, name: str | None = None, runtime: str | None = None,
               batching: BatchingConfig | Mapping[str, Any] | None = None, replicas: int = 1,
               options: Mapping[str, Any] | None = None, actor: str = "local") -> Deployment:
        """Deploy a version under ``name`` (default: the model name), or move an existing deployment to it.

        Returns once the deployment answers predictions. On failure the previous deployment (if any) keeps
        serving and its record is unchanged.
        """
        version = self.resolve_for_deploy(model_ref)
        name = check_name(name or version.model, field="name")
        configured = self.config.one("runtime").provider.name
        if runtime is not None and runtime != configured:
            raise InvalidInput(f"runtime {runtime!r} is not the configured runtime ({configured!r})", field="runtime")
        if isinstance(batching, Mapping):
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
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise InvalidInput(f"replicas: expected a positive integer, got {replicas!r}", field="replicas")
        try:
            previous = self.registry_backend.get_deployment(name)
        except NotFound:
            previous = None
        deployment = Deployment(name=name, model=version.model, version=version.number, runtime=configured,
                                requested_ref=str(model_ref), batching=batching, replicas=replicas,
                                options=dict(options or {}), state="ready",
                                created_at=previous.created_at if previous else utcnow())
        started = time.perf_counter()
        details: dict[str, Any] = {"model": version.model, "version": version.number}
        try:
            self.runtime.deploy(deployment, self.bundle_source(version))
            self.registry_backend.put_deployment(deployment)
        except BaseException as exc:
            self.audit("deployments:deploy", f"deployments/{name}", actor, outcome="error",
                       error=f"{type(exc).__name__}: {exc}"[:500], **details)
            raise
        self.audit("deployments:deploy", f"deployments/{name}", actor, **details)
        log.info("deployed", deployment=name, model=version.model, version=version.number,
                 seconds=round(time.perf_counter() - started, 3))
        self.hook.modelyard_after_deployment_changed(deployment=deployment,
                                                     change="updated" if previous else "deployed")
        return deployment

    def undeploy(self, name: str, *, actor: str = "local") -> None:
        """Take a deployment down and delete its record."""
        deployment = self.registry_backend.get_deployment(check_name(name, field="name"))
        try:
            self.runtime.undeploy(name)
        except NotFound:
            pass  # record without a live deployment (e.g. never restored): removing the record is the fix
        self.registry_backend.delete_deployment(name)
        self.audit("deployments:undeploy", f"deployments/{name}", actor)
        self.hook.modelyard_after_deployment_changed(deployment=attrs.evolve(deployment, state="stopped"),
                                                     change="undeployed")

    def deployments(self) -> list[Deployment]:
        """Every deployment record."""
        return self.registry_backend.list_deployments()

    def get_deployment(self, name: str) -> Deployment:
        """One deployment record."""
        return self.registry_backend.get_deployment(check_name(name, field="name"))

    def restore_deployments(self) -> list[Deployment]:
        """Bring back every deployment recorded as ready (server start); failures are logged and recorded."""
        restored = []
        for dep in self.registry_backend.list_deployments():
            if dep.state != "ready" or self.runtime.ready(dep.name):
                continue
            try:
                version = self.registry.get_version(ModelRef(dep.model, version=dep.version))
                self.runtime.deploy(dep, self.bundle_source(version))
            except Exception as exc:
                log.error("could not restore deployment", deployment=dep.name, error=str(exc))
                self.hook.modelyard_after_deployment_changed(
                    deployment=attrs.evolve(dep, state="failed", message=str(exc)), change="failed")
                continue
            restored.append(dep)
            self.hook.modelyard_after_deployment_changed(deployment=dep, change="restored")
        return restored

    def predict(self, deployment: str, inputs: Mapping[str, Any], *, principal: str = "local") -> dict[str, Any]:
        """Predict synchronously: numpy (or array-like) in, numpy out."""
        import numpy as np

        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        started = time.perf_counter()
        ok = False
        try:
            out = self.runtime.predict(deployment, arrays)
            ok = True
            return out
        finally:
            self._emit(deployment, arrays, started, ok, principal)

    async def apredict(self, deployment: str, inputs: Mapping[str, Any], *, principal: str = "anonymous") -> dict:
        """Predict from async code (the server's path)."""
        started = time.perf_counter()
        ok = False
        try:
            out = await self.runtime.apredict(deployment, inputs)
            ok = True
            return out
        finally:
            self._emit(deployment, inputs, started, ok, principal)

    def _emit(self, deployment: str, inputs: Mapping[str, Any], started: float, ok: bool, principal: str) -> None:
        first = next(iter(inputs.values()), None)
        rows = int(first.shape[0]) if first is not None and getattr(first, "ndim", 0) > 0 else 1
        try:
            info = self.runtime.info(deployment)
        except Exception:  # unknown deployment or a runtime without labels: the event still counts
            info = None
        event = PredictionEvent(deployment=deployment, model=info[0] if info else "", version=info[1] if info else 0,
                                rows=rows, latency_s=time.perf_counter() - started, ok=ok, principal=principal,
                                at=time.time())
        try:
            self.hook.modelyard_on_prediction(event=event)
        except Exception:
            log.error("prediction observer failed", deployment=deployment, exc_info=True)

    # ------------------------------------------------------------------------------------------- auth
    def authorize(self, principal: Any, action: str, resource: str) -> bool:
        """Decide whether ``principal`` may do ``action`` on ``resource``.

        The auth provider decides first; then every ``modelyard_authorize`` implementation may veto. Any
        ``False`` wins, and an exception in any decision denies (fails closed, STYLE 11).
        """
        try:
            if not self.auth.authorize(principal, action, resource):
                return False
            votes = self.hook.modelyard_authorize(principal=principal, action=action, resource=resource)
        except Exception:
            log.error("authorisation hook failed; denying", action=action, resource=resource, exc_info=True)
            return False
        return not any(v is False for v in votes)

    # ------------------------------------------------------------------------------------------- misc
    def audit(self, action: str, resource: str, actor: str, outcome: str = "ok", **details: Any) -> None:
        """Record a mutating action in the registry's audit log; a failing write is logged, never raised."""
        from modelyard.types import AuditEvent

        try:
            self.registry_backend.record_audit(AuditEvent(action=action, resource=resource, principal=actor,
                                                          outcome=outcome, details=details))  # type: ignore[arg-type]
        except Exception:
            log.error("audit write failed", action=action, exc_info=True)

    def close(self) -> None:
        """Run shutdown hooks and close every slot, runtime first (idempotent)."""
        if self._closed:
            return
        self._closed = True
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

