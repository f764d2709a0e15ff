"""The registry conformance kit, run against the ``sql`` backend on SQLite and on PostgreSQL."""

from __future__ import annotations

import functools

import pytest
from modelyard.testing.registry import BackendFactory, RegistryConformance
from modelyard_plugins.sql.backend import SqlRegistry


class TestSqliteConformance(RegistryConformance):
    """The kit on a SQLite file per test."""

    @pytest.fixture
    def backend_factory(self, sqlite_url: str) -> BackendFactory:
        """Each call opens another SqlRegistry on the test's file (it migrates on open, like production)."""
        return functools.partial(SqlRegistry.from_url, sqlite_url)


@pytest.mark.postgres
class TestPostgresConformance(RegistryConformance):
    """The kit on a fresh PostgreSQL schema per test."""

    @pytest.fixture
    def backend_factory(self, postgres_url: str) -> BackendFactory:
        """Each call opens another SqlRegistry on the test's schema."""
        return functools.partial(SqlRegistry.from_url, postgres_url)
