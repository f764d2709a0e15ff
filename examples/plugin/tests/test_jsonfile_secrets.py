"""The ``jsonfile`` plugin's tests: the conformance kit every secrets store passes, then the plugin in a platform.

Run from ``examples/plugin``: ``python -m pytest`` (pyproject.toml puts ``src`` on the path).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import modelyard_jsonfile
import pytest
from modelyard.errors import ConfigError
from modelyard.platform import Platform
from modelyard.plugins import get_plugin_manager
from modelyard.testing.secrets import KnownSecrets, SecretStoreConformance
from modelyard_jsonfile import JsonFileSecretStore


def write_secrets(file: Path, secrets: KnownSecrets) -> Path:
    """Write ``{(path, key): value}`` as the plugin's JSON layout."""
    data: dict[str, dict[str, str]] = {}
    for (path, key), value in secrets.items():
        data.setdefault(path, {})[key] = value
    file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return file


class TestJsonFileSecrets(SecretStoreConformance):
    """Every check of :mod:`modelyard.testing.secrets` against the jsonfile store."""

    @pytest.fixture
    def secret_store(self, known_secrets: KnownSecrets, tmp_path: Path) -> Iterator[JsonFileSecretStore]:
        store = JsonFileSecretStore.from_path(write_secrets(tmp_path / "secrets.json", known_secrets))
        yield store
        store.close()


def plugin_manager() -> object:
    """The installed plugins plus this one, registered by hand: the tests need not ``pip install`` it."""
    return get_plugin_manager(plugins=[("jsonfile", modelyard_jsonfile)])


def test_config_selects_the_provider_and_resolves_secrets(tmp_path: Path) -> None:
    """``[secrets] use = "jsonfile"`` validates, and ``${secret:…}`` elsewhere in the file reads through it."""
    write_secrets(tmp_path / "secrets.json", {("storage/artifacts", "root"): str(tmp_path / "blobs")})
    config = tmp_path / "modelyard.toml"
    config.write_text('[platform]\ndata_dir = "data"\n\n[secrets]\nuse = "jsonfile"\npath = "secrets.json"\n\n'
                      '[storage]\nurl = "${secret:storage/artifacts#root}"\n', encoding="utf-8")
    with Platform.from_config(config, plugin_manager=plugin_manager()) as platform:
        assert isinstance(platform.secrets, JsonFileSecretStore)
        assert platform.storage.url == str(tmp_path / "blobs")


def test_a_missing_file_is_a_config_error_naming_the_section(tmp_path: Path) -> None:
    """The store fails at assembly, before anything starts, and the report says where."""
    config = tmp_path / "modelyard.toml"
    config.write_text('[secrets]\nuse = "jsonfile"\npath = "nowhere.json"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Platform.from_config(config, plugin_manager=plugin_manager())
    assert "[secrets]" in info.value.report() and "nowhere.json" in info.value.report()
