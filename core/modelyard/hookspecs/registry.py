"""The ``registry`` slot: records of models, versions, aliases, tags, lineage, deployments and audit events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec, renamed
from modelyard.providers import RegistryProvider
from modelyard.types import (
    AuditEvent,
    Deployment,
    Model,
    ModelRef,
    ModelVersion,
    NewVersion,
    Page,
    ServingState,
)


@runtime_checkable
class RegistryBackend(Protocol):
    """What a registry provider promises. Every method is synchronous and safe to call from several threads
    and several processes at once.

    Invariants (proved by ``modelyard.testing.registry``): version numbers per model start at 1 and increase by
    one with no gaps and no duplicates, even under concurrent writers; versions are immutable except for their
    tags; an alias points at exactly one existing version and moves atomically; a failed call changes nothing.
    """

    def create_model(self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        """Create an empty model; :class:`~modelyard.errors.Conflict` if it exists."""
        ...

    def get_model(self, name: str) -> Model:
        """The model, with its aliases and latest version number; :class:`~modelyard.errors.NotFound` if absent."""
        ...

    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100) -> Page[Model]:
        """Models ordered by name, filtered by name prefix, all of ``tags`` and having ``alias``."""
        ...

    def create_version(self, new: NewVersion) -> ModelVersion:
        """Create the model if needed and add the next version, atomically."""
        ...

    def get_version(self, name: str, number: int) -> ModelVersion:
        """One version; NotFound if absent."""
        ...

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """The version a reference points at: by number, by alias, or the newest."""
        ...

    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        """Versions of one model, newest first."""
        ...

    def search_versions(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                        alias: str | None = None, flavor: str | None = None, offset: int = 0,
                        limit: int = 100) -> Page[ModelVersion]:
        """Versions across models, ordered by (model, number desc), filtered by model-name prefix, all of the
        version's ``tags``, carrying ``alias``, and ``flavor``."""
        ...

    def set_alias(self, name: str, alias: str, number: int) -> ModelVersion:
        """Point ``alias`` at version ``number`` (moving it if it pointed elsewhere); returns that version."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; NotFound if it does not exist."""
        ...

    def set_tags(self, name: str, tags: Mapping[str, str], *, number: int | None = None,
                 remove: Iterable[str] = ()) -> None:
        """Add/overwrite tags and remove keys, on the model (``number=None``) or one version."""
        ...

    def artifact_in_use(self, digest: str) -> bool:
        """Whether any version refers to this artifact digest (storage garbage collection asks this)."""
        ...

    # Deployment records are the desired state that every serving process reconciles its runtime to. Each
    # write bumps the deployments revision and writes its audit entry in the same transaction.
    def put_deployment(self, deployment: Deployment, *, audit: AuditEvent | None = None) -> Deployment:
        """Create or replace the record of that name; returns it with the next ``generation``."""
        ...

    def set_deployment_state(self, name: str, generation: int, state: str, message: str = "", *,
                             audit: AuditEvent | None = None) -> bool:
        """Record the outcome of converging to ``generation``, only while the record is at it; whether it was."""
        ...

    def get_deployment(self, name: str) -> Deployment:
        """One deployment record; NotFound if absent."""
        ...

    def list_deployments(self) -> list[Deployment]:
        """All deployment records, by name."""
        ...

    def delete_deployment(self, name: str, *, audit: AuditEvent | None = None) -> None:
        """Delete a deployment record; NotFound if absent."""
        ...

    def deployments_revision(self) -> int:
        """A counter that grows with every deployment-record write: one cheap read for pollers."""
        ...

    def report_serving(self, process: str, states: Iterable[ServingState], *, replace: bool = False) -> None:
        """Upsert what one serving process serves, per deployment (``replace`` drops its other rows first)."""
        ...

    def forget_serving(self, process: str, deployment: str | None = None) -> None:
        """Remove a process's reports (all, or one deployment's)."""
        ...

    def touch_serving(self, process: str) -> None:
        """A process's heartbeat: its reports' ``seen_at`` becomes now."""
        ...

    def list_serving(self, deployment: str | None = None) -> list[ServingState]:
        """Every process's reports, for one deployment or all."""
        ...

    def record_audit(self, event: AuditEvent) -> None:
        """Append an audit event."""
        ...

    def list_audit(self, *, resource: str | None = None, offset: int = 0, limit: int = 100) -> Page[AuditEvent]:
        """Audit events, newest first, optionally for one resource."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@hookspec
def modelyard_registry_backends() -> Iterable[RegistryProvider]:  # type: ignore[empty-body]
    """Offer registry backends: the providers of the ``registry`` slot (``sql``, …).

    Called once per plugin manager, at assembly, when the platform collects providers for every slot.

    Returns:
        An iterable of :class:`~modelyard.providers.RegistryProvider`; the factory returns a
        :class:`RegistryBackend`.

    All results are collected; two providers with the same name are an error naming both plugins.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_registry_backends():
                yield RegistryProvider(name="sql", factory=SqlRegistry.from_config, config_schema=SqlConfig)
    """


@hookspec(warn_on_impl=renamed("modelyard_registries", "modelyard_registry_backends"))
def modelyard_registries() -> Iterable[RegistryProvider]:  # type: ignore[empty-body]
    """Deprecated former name of :func:`modelyard_registry_backends`; implement that instead.

    Called, and its results collected, exactly like :func:`modelyard_registry_backends`, for one more release
    (it is removed in modelyard 0.3); registering a plugin that implements it emits a ``DeprecationWarning``
    naming the new hook.

    Returns:
        An iterable of :class:`~modelyard.providers.RegistryProvider`; the factory returns a
        :class:`RegistryBackend`.

    All results are collected, together with those of :func:`modelyard_registry_backends`.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_registry_backends():  # rename the function; its body stays the same
                ...
    """
