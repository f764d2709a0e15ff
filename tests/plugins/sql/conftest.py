"""Fixtures of the SQL registry's tests: a SQLite file per test; on PostgreSQL a database per run and a schema
per test.

PostgreSQL comes from ``MODELYARD_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
The run creates its own database there — with an ICU ``en-US`` collation when the server allows, so that code
relying on the database's locale to order names would fail — and drops it at the end. If the server cannot be
reached the PostgreSQL tests skip with the reason, except under ``CI``, where they fail: CI must not skip them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

PG_ENV = "MODELYARD_TEST_POSTGRES_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A registry URL for a SQLite file of this test's own."""
    return f"sqlite:///{tmp_path / 'registry.db'}"


def _admin_engine(url: sa.URL) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                            connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[sa.URL]:
    """A fresh database for this test run on the PostgreSQL test server, dropped afterwards."""
    server = sa.make_url(os.environ.get(PG_ENV, DEFAULT_PG_URL))
    admin = _admin_engine(server)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        detail = (str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__])[0]
        reason = (f"PostgreSQL at {server.render_as_string(hide_password=True)} is unreachable ({detail}); "
                  f"start it or point {PG_ENV} at one")
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI is set, and CI must run the PostgreSQL tests, not skip them", pytrace=False)
        pytest.skip(reason)
    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        try:
            conn.execute(sa.text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu "
                                 "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"))
        except sa.exc.DBAPIError:  # no ICU (or PostgreSQL < 15): the server's default locale will do
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_database: sa.URL) -> Iterator[str]:
    """A registry URL whose connections work in a fresh schema of the run's database (via ``search_path``)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_database)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_database.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
