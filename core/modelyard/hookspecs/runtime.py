"""The ``runtime`` slot: bring bundles up, serve predictions, report readiness, take them down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import RuntimeProvider
from modelyard.types import BundleSource, Deployment, Prediction

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from modelyard.hookspecs.builder import LoadedModel


@runtime_checkable
class Loader(Protocol):
    """What a runtime calls to turn a :class:`BundleSource` into a loaded model, in the process it runs in.

    The Platform builds one from its storage and builders (:class:`modelyard.loading.BundleLoader`) and hands
    it to the runtime's factory as ``ctx.services["loader"]``.
    """

    def fetch(self, source: BundleSource) -> Path:
        """A local file holding the verified artifact (a cached copy is re-hashed before it is trusted)."""
        ...

    def load(self, source: BundleSource, options: Mapping[str, Any] | None = None, *,
             path: Path | None = None) -> LoadedModel:
        """Load the bundle through its flavor's builder (fetching it first unless ``path`` is given)."""
        ...


@runtime_checkable
class Runtime(Protocol):
    """What a runtime provider promises. ``deploy`` returns once the deployment answers predictions (or raises);
    replacing a deployment keeps serving the old one until the new one is ready.

    ``predict`` is the one way to predict: async, and it says what happened (:class:`~modelyard.types.Prediction`).
    A runtime checks the inputs against the signature of the version that will run them, once; blocking callers
    go through the Platform's sync facade, never through the runtime.
    """

    def deploy(self, deployment: Deployment, source: BundleSource) -> None:
        """Bring up (or replace) the deployment named ``deployment.name``."""
        ...

    def undeploy(self, name: str) -> None:
        """Take a deployment down; NotFound if this runtime does not have it."""
        ...

    async def predict(self, name: str, inputs: Mapping[str, np.ndarray], *,
                      version: int | None = None) -> Prediction:
        """Predict with the deployment ``name``: its outputs, the model and version that answered, the rows and
        the time spent queueing and in the model.

        ``version`` (optional; the platform passes it only when a caller names one) is a precondition: when the
        deployment serves another version the call raises NotFound before the model runs.

        Raises :class:`~modelyard.errors.NotFound` for an unknown deployment,
        :class:`~modelyard.errors.InvalidInput` for inputs that do not fit the signature of the version that
        would run them, and :class:`~modelyard.errors.Overloaded` (at once, never blocking) when its queue is
        full.
        """
        ...

    def ready(self, name: str) -> bool:
        """Whether the deployment answers predictions now."""
        ...

    def status(self) -> Mapping[str, Mapping[str, Any]]:
        """Per deployment: state, model, version, queue depth, in-flight count, replicas."""
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
