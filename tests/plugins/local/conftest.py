"""Fixtures for the local runtime and scheduler tests (helpers live in ``local_models``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from local_models import SourceFactory, build_onnx
from modelyard.bridge import SyncBridge


@pytest.fixture(scope="session")
def onnx_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two versions of the linear model as ONNX files."""
    base = tmp_path_factory.mktemp("onnx")
    return {v: build_onnx(base / f"linear-{v}.onnx", v) for v in (1, 2)}


@pytest.fixture
def sources(onnx_paths: dict[int, Path]) -> SourceFactory:
    """``sources(version, **options)`` → a BundleSource; the factory is also the runtime's loader, and
    ``sources.loaded`` lists the models it loaded."""
    return SourceFactory(onnx_paths)


@pytest.fixture
def sync() -> Iterator[Callable[[Any, str, Mapping[str, Any]], dict]]:
    """``sync(runtime, name, inputs)`` → outputs: a blocking call through a :class:`SyncBridge`, the way the
    Platform's sync facade calls the async runtime."""
    bridge = SyncBridge()

    def call(runtime: Any, name: str, inputs: Mapping[str, Any]) -> dict:
        return dict(bridge.run(runtime.predict, name, inputs).outputs)

    call.bridge = bridge  # type: ignore[attr-defined]
    yield call
    bridge.close()
