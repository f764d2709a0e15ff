"""Fixtures for the core's tests: tiny fake plugins that fill every slot, and a fresh plugin manager per test.

The fakes stand in for the first-party plugins so that config and plugin-manager behaviour is tested on its own
(STYLE 17: entry-point loading is off unless a test is about discovery). Their provider names are the embedded
defaults (``sql``, ``fsspec``, ``local``, …) so that an empty config validates against them.
"""

# No ``from __future__ import annotations`` here: cattrs resolves string annotations of the fake config classes
# through ``sys.modules[cls.__module__]``, and several test folders have a module called ``conftest``.
import os
import sys
from collections.abc import Callable
from typing import Literal

import attrs
import pytest
from modelyard import hookimpl
from modelyard.errors import NotFound
from modelyard.plugins import PluginManager, get_plugin_manager
from modelyard.providers import (
    AuthProvider,
    BillingProvider,
    BuilderProvider,
    MonitorProvider,
    RegistryProvider,
    RuntimeProvider,
    SchedulerProvider,
    SecretsProvider,
    StorageProvider,
)

#: A module that is never installed: providers requiring it show their install hint.
MISSING_MODULE = "modelyard_test_module_that_is_not_installed"


@attrs.frozen(kw_only=True)
class FakeRegistryConfig:
    """Like the sql registry's options."""

    url: str | None = None
    pool_size: int = 5
    echo: bool = False


@attrs.frozen(kw_only=True)
class FakeStorageConfig:
    """Like the fsspec storage's options."""

    url: str | None = None
    options: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class FakeRuntimeConfig:
    """Like the local runtime's options."""

    workers: int = 2
    max_wait_ms: float = 2.0
    mode: Literal["threads", "inline"] = "threads"


@attrs.frozen(kw_only=True)
class FakeRayConfig:
    """Like the ray runtime's options."""

    address: str = "auto"


@attrs.frozen(kw_only=True)
class FakeSchedulerConfig:
    """Like the local scheduler's options."""

    workers: int = 1
    retries: int = 3


@attrs.frozen(kw_only=True)
class FakeOnnxConfig:
    """Like the onnx builder's options."""

    providers: list[str] = attrs.field(factory=lambda: ["CPUExecutionProvider"])
    validate: bool = True


@attrs.frozen(kw_only=True)
class FakeLogMonitorConfig:
    """Like the log monitor's options."""

    level: Literal["debug", "info", "warning"] = "info"


class FakeEnvSecrets:
    """Reads ``MODELYARD_TEST_SECRET__<path>__<key>`` from the environment."""

    def get(self, path: str, key: str) -> str:
        """The secret, or NotFound naming path and key."""
        try:
            return os.environ[f"MODELYARD_TEST_SECRET__{path}__{key}"]
        except KeyError:
            raise NotFound(f"secret {path}#{key} not found") from None

    def close(self) -> None:
        """Nothing to release."""


@attrs.frozen
class Built:
    """What a fake factory returns: its slot, provider name and typed config."""

    slot: str
    provider: str
    config: object

    def close(self) -> None:
        """Nothing to release."""


def _built(config: object, ctx) -> Built:
    return Built(ctx.slot, ctx.provider, config)


class CoreFakes:
    """One plugin offering a provider for every slot under the default names, plus an uninstallable ``ray``."""

    @hookimpl
    def modelyard_secret_stores(self):
        """Offer ``env``."""
        yield SecretsProvider(name="env", factory=lambda _c, _ctx: FakeEnvSecrets(), description="fake env secrets")

    @hookimpl
    def modelyard_registry_backends(self):
        """Offer ``sql``."""
        yield RegistryProvider(name="sql", factory=_built, config_schema=FakeRegistryConfig,
                               description="fake registry")

    @hookimpl
    def modelyard_artifact_stores(self):
        """Offer ``fsspec``."""
        yield StorageProvider(name="fsspec", factory=_built, config_schema=FakeStorageConfig,
                              description="fake storage")

    @hookimpl
    def modelyard_builders(self):
        """Offer the ``onnx`` flavor."""
        yield BuilderProvider(name="onnx", factory=_built, config_schema=FakeOnnxConfig, description="fake onnx")

    @hookimpl
    def modelyard_schedulers(self):
        """Offer ``local``."""
        yield SchedulerProvider(name="local", factory=_built, config_schema=FakeSchedulerConfig)

    @hookimpl
    def modelyard_runtimes(self):
        """Offer ``local`` and a ``ray`` whose package is missing."""
        yield RuntimeProvider(name="local", factory=_built, config_schema=FakeRuntimeConfig)
        yield RuntimeProvider(name="ray", factory=_built, config_schema=FakeRayConfig, requires=(MISSING_MODULE,),
                              extra="ray", description="fake ray")

    @hookimpl
    def modelyard_monitors(self):
        """Offer ``log``."""
        yield MonitorProvider(name="log", factory=_built, config_schema=FakeLogMonitorConfig)

    @hookimpl
    def modelyard_authenticators(self):
        """Offer ``anonymous``."""
        yield AuthProvider(name="anonymous", factory=_built)

    @hookimpl
    def modelyard_meters(self):
        """Offer ``none``."""
        yield BillingProvider(name="none", factory=_built)


def fake_plugin_manager(*extra: object, disable: tuple[str, ...] = ()) -> PluginManager:
    """A fresh plugin manager holding only :class:`CoreFakes` (named ``fakes``) and ``extra``."""
    return get_plugin_manager(load_entrypoints=False, plugins=[("fakes", CoreFakes()), *extra], disable=disable)


@pytest.fixture
def core_fakes() -> type[CoreFakes]:
    """The fake plugin class, for tests that subclass it (e.g. to drop one slot)."""
    return CoreFakes


@pytest.fixture
def fake_pm() -> PluginManager:
    """A fresh plugin manager with the fakes (STYLE 17)."""
    return fake_plugin_manager()


@pytest.fixture(scope="session")
def fake_pm_factory() -> Callable[[], PluginManager]:
    """Builds a fresh fake plugin manager on every call (what ``build_app(plugin_manager_factory=…)`` takes)."""
    return fake_plugin_manager


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own MODELYARD_* variables must not leak into the tests.
    for name in ("MODELYARD_CONFIG", "MODELYARD_SERVER", "MODELYARD_DISABLE_PLUGINS", "MODELYARD_TRACE_PLUGINS",
                 "MODELYARD_API_KEY"):
        monkeypatch.delenv(name, raising=False)


class FakeSite:
    """A directory on ``sys.path`` holding plugin "distributions" made without pip: a module plus a
    ``.dist-info`` whose ``entry_points.txt`` declares it in the ``modelyard`` group."""

    def __init__(self, root, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self._monkeypatch = monkeypatch
        self.modules: list[str] = []

    def add(self, dist: str, version: str, *, entry: str, module: str, source: str | None = None,
            plugin: object = None) -> None:
        """Install ``module`` as distribution ``dist`` with entry point ``entry = module``.

        The module is ``source`` written to a file, or ``plugin`` (any object) placed in ``sys.modules``.
        """
        import importlib
        import textwrap

        if source is not None:
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        else:
            self._monkeypatch.setitem(sys.modules, module, plugin)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[modelyard]\n{entry} = {module}\n")
        importlib.invalidate_caches()
        self.modules.append(module)

    def isolate(self) -> None:
        """Make entry-point discovery see only this site, not the built-in plugins installed in the venv."""
        import importlib.metadata as real
        import types

        import modelyard.plugins

        root = str(self.root)

        def entry_points(*, group: str):
            return [ep for dist in real.distributions(path=[root]) for ep in dist.entry_points if ep.group == group]

        self._monkeypatch.setattr(modelyard.plugins, "metadata", types.SimpleNamespace(entry_points=entry_points))


@pytest.fixture
def fake_site(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A :class:`FakeSite` on ``sys.path`` for this test; its modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    site = FakeSite(root, monkeypatch)
    yield site
    for module in site.modules:  # the next test may define a module of the same name differently
        sys.modules.pop(module, None)


@attrs.frozen
class TinyModel:
    """A tiny ONNX linear model on disk and the numpy function it computes: ``y = x @ w + b``."""

    path: object
    w: object
    b: object

    def expected(self, x):
        """What the model must answer for ``x`` (float32)."""
        import numpy as np

        return np.asarray(x, dtype=np.float32) @ self.w + self.b


def _linear_onnx(path, w, b) -> TinyModel:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(w, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return TinyModel(path, w, b)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> tuple[TinyModel, TinyModel]:
    """Two real ONNX models (3 inputs → 2 outputs), built once per session with ``onnx.helper``."""
    root = tmp_path_factory.mktemp("onnx")
    one = _linear_onnx(root / "linear-1.onnx", [[1, 0], [0, 1], [1, 1]], [0.5, -0.5])
    two = _linear_onnx(root / "linear-2.onnx", [[2, 0], [0, 2], [-1, 1]], [0.0, 1.0])
    return one, two
