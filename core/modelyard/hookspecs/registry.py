"""The ``registry`` slot: records of models, versions, aliases, tags, lineage, deployments and audit events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import RegistryProvider
from modelyard.types import AuditEvent, Deployment, Model, ModelRef, ModelVersion, NewVersion, Page


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

    def put_deployment(self, deployment: Deployment) -> Deployment:
        """Create or replace the deployment record of that name."""
        ...

    def get_deployment(self, name: str) -> Deployment:
        """One deployment record; NotFound if absent."""
        ...

    def list_deployments(self) -> list[Deployment]:
        """All deployment records, by name."""
        ...

    def delete_deployment(self, name: str) -> None:
        """Delete a deployment record; NotFound if absent."""
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
def modelyard_registries() -> Iterable[RegistryProvider]:  # type: ignore[empty-body]
    """Offer registry providers.

    Called once per plugin manager, at assembly, when the platform collects providers for every slot.

    Returns:
        An iterable of :class:`~modelyard.providers.RegistryProvider`; the factory returns a
        :class:`RegistryBackend`.

    All results are collected; two providers with the same name are an error naming both plugins.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_registries():
                yield RegistryProvider(name="sql", factory=SqlRegistry.from_config, config_schema=SqlConfig)
    """
