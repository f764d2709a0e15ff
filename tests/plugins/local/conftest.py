"""Fixtures for the local runtime and scheduler tests (helpers live in ``local_models``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_models import SourceFactory, build_onnx


@pytest.fixture(scope="session")
def onnx_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two versions of the linear model as ONNX files."""
    base = tmp_path_factory.mktemp("onnx")
    return {v: build_onnx(base / f"linear-{v}.onnx", v) for v in (1, 2)}


@pytest.fixture
def sources(onnx_paths: dict[int, Path]) -> SourceFactory:
    """``sources(version, **options)`` → a BundleSource; ``sources.loaded`` lists the models it loaded."""
    return SourceFactory(onnx_paths)
