"""The secrets conformance kit, run against ``env`` and against ``file`` in both of its layouts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelyard.testing.secrets import KnownSecrets, SecretStoreConformance
from modelyard_plugins.secrets.env import EnvSecretStore, env_var_name
from modelyard_plugins.secrets.file import FileSecretStore
from secret_files import write_directory, write_single_file


class TestEnvSecrets(SecretStoreConformance):
    """``env``: the kit's secrets as real environment variables, under a prefix unique to the test."""

    @pytest.fixture
    def secret_store(self, known_secrets: KnownSecrets, monkeypatch: pytest.MonkeyPatch) -> Iterator[EnvSecretStore]:
        """Set one variable per secret in ``os.environ`` (undone after the test)."""
        prefix = f"MODELYARD_TEST_{uuid.uuid4().hex[:8].upper()}_"
        for (path, key), value in known_secrets.items():
            monkeypatch.setenv(env_var_name(path, key, prefix), value)
        store = EnvSecretStore(prefix=prefix)
        yield store
        store.close()


class TestFileDirectory(SecretStoreConformance):
    """``file`` on a directory: one TOML file per secret path."""

    @pytest.fixture
    def secret_store(self, known_secrets: KnownSecrets, tmp_path: Path) -> Iterator[FileSecretStore]:
        """``<tmp>/secrets/db/ml``, ``<tmp>/secrets/api``, …"""
        store = FileSecretStore.from_path(write_directory(tmp_path / "secrets", known_secrets))
        yield store
        store.close()


class TestFileSingle(SecretStoreConformance):
    """``file`` on one TOML file with nested tables."""

    @pytest.fixture
    def secret_store(self, known_secrets: KnownSecrets, tmp_path: Path) -> Iterator[FileSecretStore]:
        """``<tmp>/secrets.toml`` with ``[db.ml]``, ``[api]``, …"""
        store = FileSecretStore.from_path(write_single_file(tmp_path / "secrets.toml", known_secrets))
        yield store
        store.close()
