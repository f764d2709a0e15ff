"""Fixtures for the server plugin's tests: one real platform (SQLite registry, local files, local runtime, the
onnx builder) per test module, served through Litestar's TestClient; the model is built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from modelyard import Platform
from server_models import build_logreg, make_platform


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 20-feature logistic regression as an ONNX file."""
    return build_logreg(tmp_path_factory.mktemp("server-model") / "logreg.onnx")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform per module (assembly and migrations cost too much per test); tests use their own names."""
    with make_platform(tmp_path_factory.mktemp("server-data")) as platform:
        yield platform


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    """A TestClient over the app in dev mode; the platform outlives the app."""
    from modelyard_plugins.server.app import create_app

    with TestClient(create_app(platform, dev=True, close_platform=False)) as client:
        yield client


@pytest.fixture(scope="module")
def deployed(platform: Platform, model_path: Path) -> str:
    """The model registered as ``logreg`` and deployed under the same name."""
    platform.registry.register("logreg", model_path, flavor="onnx")
    platform.deploy("logreg")
    return "logreg"
