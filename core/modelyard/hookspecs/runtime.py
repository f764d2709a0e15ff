"""The ``runtime`` slot: bring bundles up, serve predictions, report readiness, take them down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import RuntimeProvider
from modelyard.types import Deployment, Signature

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np


@attrs.frozen(kw_only=True)
class BundleSource:
    """Everything a runtime needs to load one version, wherever it runs.

    ``fetch(dest)`` streams the verified artifact into ``dest``; ``load(path)`` returns a
    :class:`~modelyard.hookspecs.builder.LoadedModel` through the flavor's builder. Remote runtimes (Ray) ship
    this record to their workers.
    """

    model: str
    version: int
    flavor: str
    digest: str
    size: int
    signature: Signature
    fetch: Any  # Callable[[Path], Path]
    load: Any  # Callable[[Path, Mapping[str, Any]], LoadedModel]
    local_path: Path | None = None


@runtime_checkable
class Runtime(Protocol):
    """What a runtime provider promises. ``deploy`` returns once the deployment answers predictions (or raises);
    replacing a deployment keeps serving the old one until the new one is ready."""

    def deploy(self, deployment: Deployment, source: BundleSource) -> None:
        """Bring up (or replace) the deployment named ``deployment.name``."""
        ...

    def undeploy(self, name: str) -> None:
        """Take a deployment down; NotFound if this runtime does not have it."""
        ...

    def predict(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Synchronous prediction (library use, any thread)."""
        ...

    async def apredict(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Asynchronous prediction (the server's path); raises Overloaded when queues are full."""
        ...

    def ready(self, name: str) -> bool:
        """Whether the deployment answers predictions now."""
        ...

    def info(self, name: str) -> tuple[str, int]:
        """``(model, version)`` a deployment serves — O(1), called per prediction to label events."""
        ...

    def status(self) -> Mapping[str, Mapping[str, Any]]:
        """Per deployment: state, version, queue depth, in-flight count, replicas."""
        ...

    def close(self) -> None:
        """Take every deployment down and free resources."""
        ...


@hookspec
def modelyard_runtimes() -> Iterable[RuntimeProvider]:  # type: ignore[empty-body]
    """Offer runtime providers (``local``, ``ray``, …).

    Called once per plugin manager, at assembly.

    Returns:
        An iterable of :class:`~modelyard.providers.RuntimeProvider`; the factory returns a :class:`Runtime`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_runtimes():
                yield RuntimeProvider(name="ray", factory=RayRuntime.from_config, requires=("ray",), extra="ray")
    """

