"""``[builders] enabled`` restricts the flavors a platform offers, as the builder hookspec says; without it every
installed flavor is enabled; options tables of flavors left out are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelyard import Platform
from modelyard.errors import ConfigError, InvalidInput


def _platform(tmp_path: Path, builders: dict) -> Platform:
    return Platform.from_config({"platform": {"data_dir": str(tmp_path), "log_level": "warning"},
                                 "builders": builders})


def test_without_a_list_every_installed_flavor_is_enabled(tmp_path: Path) -> None:
    with _platform(tmp_path, {}) as platform:
        assert {"onnx", "torch", "tensorflow", "sklearn"} <= set(platform.builders)


def test_a_list_enables_only_those_flavors(tmp_path: Path) -> None:
    with _platform(tmp_path, {"enabled": ["onnx"]}) as platform:
        assert set(platform.builders) == {"onnx"}
        with pytest.raises(InvalidInput, match="flavor 'torch' has no builder"):
            platform.builder("torch")


def test_options_of_a_flavor_left_out_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in \\[builders\\] enabled"):
        _platform(tmp_path, {"enabled": ["onnx"], "torch": {}})


@pytest.mark.parametrize("value", ["onnx", [1], {"a": 1}])
def test_enabled_must_be_a_list_of_names(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="expected a list of flavor names"):
        _platform(tmp_path, {"enabled": value})


def test_an_unknown_flavor_in_the_list_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="onxx"):
        _platform(tmp_path, {"enabled": ["onxx"]})
