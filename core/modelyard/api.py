"""The public verbs, once: what an embedded :class:`~modelyard.platform.Platform` and a
:class:`~modelyard.client.Client` of a server both offer, with the same signatures and the same records back.

Code written against :class:`PlatformAPI` — the CLI's commands, an integrator's script — runs unchanged in
process or against a server::

    def promote(api: PlatformAPI, name: str) -> Deployment:
        newest = api.registry.get_version(name)
        api.registry.set_alias(name, newest.number, "production")
        return api.deploy(f"{name}@production")

The registry's verbs live on ``api.registry`` (:class:`RegistryAPI`) as they do on the Platform; a Client is its
own registry, so ``client.register(...)`` and ``client.registry.register(...)`` are one method. Implementations
may take more keyword arguments than the Protocol names (the Platform's ``actor``, the Client's ``binary``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: importing the Protocol imports nothing else
    from modelyard.client import Client
    from modelyard.platform import Platform
    from modelyard.types import (
        BatchingConfig,
        Deployment,
        Lineage,
        Model,
        ModelRef,
        ModelVersion,
        Page,
        ServingState,
    )


class RegistryAPI(Protocol):
    """Register, find, tag and alias model versions (``platform.registry``, or a Client)."""

    def register(self, name: str, source: str | os.PathLike[str], *, flavor: str,
                 tags: Mapping[str, str] | None = None, lineage: Lineage | Mapping[str, Any] | None = None,
                 alias: str | None = None, description: str = "", sample_input: Mapping[str, Any] | None = None,
                 expected_output: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> ModelVersion:
        """Build ``source`` (a local path, or a URL such as ``s3://…``) with the ``flavor`` builder and record it
        as the next version of ``name``; the new version."""
        ...

    def get_model(self, name: str) -> Model:
        """One model with its tags and aliases."""
        ...

    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100) -> Page[Model]:
        """A page of models by name, filtered by name prefix, model tags and alias."""
        ...

    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        """A page of a model's versions, newest first."""
        ...

    def get_version(self, ref: str | ModelRef, version: int | None = None) -> ModelVersion:
        """The version ``NAME`` (newest), ``NAME:VERSION`` or ``NAME@ALIAS`` (or ``NAME`` plus ``version``) is."""
        ...

    def search(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None, alias: str | None = None,
               flavor: str | None = None, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        """A page of versions across models by name prefix, version tags, alias and flavor, newest first."""
        ...

    def set_alias(self, name: str, version: int, alias: str) -> ModelVersion:
        """Point ``alias`` at ``version`` of ``name`` (moving it if it pointed elsewhere); that version."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        ...

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None,
                 remove: Iterable[str] = ()) -> Model | ModelVersion:
        """Set and remove tags on a model or, with ``version``, one version; the updated model or version."""
        ...


class PlatformAPI(Protocol):
    """The registry, deployments and predictions: what the CLI's commands call, on a Platform or a Client."""

    @property
    def registry(self) -> RegistryAPI:
        """The registry's verbs."""
        ...

    def deploy(self, model_ref: str | ModelRef, *, name: str | None = None,
               batching: BatchingConfig | Mapping[str, Any] | None = None, replicas: int = 1,
               options: Mapping[str, Any] | None = None) -> Deployment:
        """Deploy ``NAME`` (its ``production`` alias when set, else the newest), ``NAME:VERSION`` or
        ``NAME@ALIAS`` under ``name`` (default: the model's); returns once it answers predictions."""
        ...

    def undeploy(self, name: str) -> None:
        """Take a deployment down and delete its record."""
        ...

    def deployments(self) -> list[Deployment]:
        """Every deployment record."""
        ...

    def get_deployment(self, name: str) -> Deployment:
        """One deployment record."""
        ...

    def serving(self, name: str) -> list[ServingState]:
        """Per live serving process: the version of deployment ``name`` it serves, of which generation, its state."""
        ...

    def predict(self, deployment: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs by name as numpy arrays, for inputs by name (numpy arrays or array-likes)."""
        ...

    def close(self) -> None:
        """Release the platform, or the connection."""
        ...


if TYPE_CHECKING:  # mypy proves both implementations keep to the Protocol
    def _implementations(platform: Platform, client: Client) -> tuple[PlatformAPI, PlatformAPI, RegistryAPI]:
        return platform, client, platform.registry


__all__ = ["PlatformAPI", "RegistryAPI"]
