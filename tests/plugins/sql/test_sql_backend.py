"""What the conformance kit cannot know about the ``sql`` backend: URLs and connection settings, migrations,
rollback of the version counter, lock retries, query counts and plans, and assembly through the Platform."""

from __future__ import annotations

import datetime as dt
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from modelyard import Platform, hookimpl
from modelyard.errors import ConfigError, Conflict, NotFound, PluginError, Unavailable
from modelyard.plugins import collect_providers, get_plugin_manager
from modelyard.providers import ProviderContext, SecretsProvider, StorageProvider
from modelyard.testing.registry import new_version
from modelyard.types import ModelRef
from modelyard_plugins.sql import SqlConfig, create_registry
from modelyard_plugins.sql import engine as sql_engine
from modelyard_plugins.sql.backend import SqlRegistry
from modelyard_plugins.sql.migrate import alembic_config, head_revision
from modelyard_plugins.sql.tables import metadata

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh registry database URL, on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def registry(url: str) -> Iterator[SqlRegistry]:
    """A migrated registry on ``url``."""
    backend = SqlRegistry.from_url(url)
    yield backend
    backend.close()


class Statements:
    """Records every SQL statement an engine sends, with its parameters."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[str, Any]] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SELECT 1")):
            self.seen.append((statement, parameters))

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


# --------------------------------------------------------------------------------------------- the plugin
def test_the_plugin_offers_the_sql_registry() -> None:
    """Declared through the entry point like any plugin, with its config schema."""
    entry = collect_providers(get_plugin_manager())["registry"]["sql"]
    assert entry.plugin == "sql" and entry.distribution == "modelyard"
    assert entry.provider.config_schema is SqlConfig and entry.provider.factory is create_registry
    assert not entry.provider.missing_requirements()


def test_loading_the_plugin_does_not_import_sqlalchemy() -> None:
    """Plugin discovery stays cheap: SQLAlchemy and Alembic load when the registry starts."""
    code = ("import sys, modelyard_plugins.sql; from modelyard.plugins import get_plugin_manager; "
            "get_plugin_manager(); print(sorted(m for m in ('sqlalchemy', 'alembic', 'sqlmodel') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_factory_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    """No url: ``<data_dir>/registry.db``, migrated."""
    ctx = ProviderContext(slot="registry", provider="sql", data_dir=tmp_path, hook=None, platform=None,  # type: ignore[arg-type]
                          plugin_manager=None)  # type: ignore[arg-type]
    backend = create_registry(SqlConfig(), ctx)
    try:
        assert backend.url == f"sqlite:///{tmp_path / 'registry.db'}"
        assert backend.create_version(new_version("m")).number == 1
    finally:
        backend.close()
    rows = sqlite3.connect(tmp_path / "registry.db").execute("SELECT version_num FROM alembic_version").fetchall()
    assert rows == [(head_revision(),)]


# --------------------------------------------------------------------------------------------- URLs, connecting
def _shows_no_driver_traceback(exc: BaseException) -> bool:
    """Python prints no "During handling of the above exception" chain for it."""
    return exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


@pytest.mark.parametrize("bad", ["", "not a url", "mysql+pymysql://root@127.0.0.1/db", "oracle://x@y/z",
                                 "sqlite://", "sqlite:///:memory:"])
def test_bad_urls_are_unavailable_with_a_clear_message(bad: str) -> None:
    """A bad or unsupported URL is Unavailable saying what is expected, not a SQLAlchemy traceback."""
    with pytest.raises(Unavailable) as info:
        SqlRegistry.from_url(bad)
    assert "sqlite" in str(info.value)
    assert _shows_no_driver_traceback(info.value)


def test_an_unreachable_database_is_unavailable_and_the_password_stays_hidden() -> None:
    """Connection refused: Unavailable naming the database, its password masked; no hang."""
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        SqlRegistry.from_url("postgresql+psycopg://admin:s3cret-pw@127.0.0.1:1/registry")
    message = str(info.value)
    assert "127.0.0.1:1/registry" in message and "unavailable" in message
    assert "s3cret-pw" not in message and "***" in message
    assert _shows_no_driver_traceback(info.value)
    assert time.monotonic() - started < 15


def test_a_sqlite_file_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    """The message carries SQLite's own reason."""
    with pytest.raises(Unavailable, match="unable to open database file"):
        SqlRegistry.from_url(f"sqlite:///{tmp_path}/no/such/dir/registry.db")


def test_postgres_urls_mean_psycopg() -> None:
    """``postgresql://`` and ``postgres://`` select psycopg 3, the driver modelyard installs."""
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        assert sql_engine.parse_url(f"{scheme}://u@h/db").drivername == "postgresql+psycopg"


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    """Every pooled SQLite connection gets the pragmas the backend relies on."""
    backend = SqlRegistry.from_url(sqlite_url)
    try:
        with backend.engine.connect() as conn:
            pragma = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                      for p in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")}
    finally:
        backend.close()
    assert pragma == {"journal_mode": "wal", "busy_timeout": sql_engine.SQLITE_BUSY_TIMEOUT_MS, "foreign_keys": 1,
                      "synchronous": 1}


# --------------------------------------------------------------------------------------------- migrations
def test_the_migrated_schema_is_exactly_the_tables(registry: SqlRegistry) -> None:
    """Alembic finds no difference between head and ``tables.metadata``, and alembic_version says head."""
    with registry.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []
        assert ctx.get_current_revision() == head_revision()
        # the comparison does see differences: a table the migrations lack
        extra = sa.MetaData()
        for table in metadata.tables.values():
            table.to_metadata(extra)
        sa.Table("not_migrated", extra, sa.Column("id", sa.Integer, primary_key=True))
        assert [d[0] for d in compare_metadata(ctx, extra)] == ["add_table"]


def test_downgrade_then_upgrade(sqlite_url: str) -> None:
    """The first revision's downgrade removes everything it created, and upgrading again works."""
    SqlRegistry.from_url(sqlite_url).close()
    engine = sql_engine.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    backend = SqlRegistry.from_url(sqlite_url)
    try:
        assert backend.create_version(new_version("m")).number == 1
    finally:
        backend.close()


def test_without_migrate_an_empty_database_is_refused(sqlite_url: str) -> None:
    """``migrate = false`` on an unmigrated database: Unavailable naming the revision needed; nothing created."""
    with pytest.raises(Unavailable, match=f"needs {head_revision()}.*migrate = true"):
        SqlRegistry.from_url(sqlite_url, migrate=False)
    engine = sa.create_engine(sqlite_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    SqlRegistry.from_url(sqlite_url).close()
    SqlRegistry.from_url(sqlite_url, migrate=False).close()  # current now


def test_a_schema_from_a_newer_modelyard_is_refused(sqlite_url: str) -> None:
    """A revision this version does not know: Unavailable saying so, with or without migrate, nothing changed."""
    SqlRegistry.from_url(sqlite_url).close()
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        for migrate in (True, False):
            with pytest.raises(Unavailable, match="'9999', which this version of modelyard does not know"):
                SqlRegistry.from_url(sqlite_url, migrate=migrate)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [("9999",)]
    finally:
        engine.dispose()


def test_simultaneous_first_starts_migrate_once(url: str) -> None:
    """Several servers starting on one empty database at once: one migrates, the others wait and find it done."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    backends: list[SqlRegistry] = []

    def start() -> None:
        barrier.wait()
        try:
            backends.append(SqlRegistry.from_url(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(backends) == 4
        with backends[0].engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
        assert [b.create_version(new_version("m")).number for b in backends] == [1, 2, 3, 4]
    finally:
        for b in backends:
            b.close()


# --------------------------------------------------------------------------------------------- atomicity
def _refuse_flavor_boom(registry: SqlRegistry) -> None:
    """Install a trigger that makes inserting a version of flavor 'boom' fail *after* the counter was bumped."""
    with registry.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER refuse_boom BEFORE INSERT ON versions WHEN NEW.flavor = 'boom' "
                                 "BEGIN SELECT RAISE(ABORT, 'boom refused'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                                 "IF NEW.flavor = 'boom' THEN RAISE EXCEPTION 'boom refused' USING ERRCODE = "
                                 "'check_violation'; END IF; RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER refuse_boom BEFORE INSERT ON versions FOR EACH ROW "
                                 "EXECUTE FUNCTION refuse_boom()")


def test_a_failed_version_insert_rolls_the_counter_back(registry: SqlRegistry) -> None:
    """The counter bump and the insert are one transaction: no gap, and no model left behind."""
    registry.create_version(new_version("churn"))
    _refuse_flavor_boom(registry)
    with pytest.raises(Conflict, match="boom refused"):
        registry.create_version(new_version("churn", flavor="boom"))
    with pytest.raises(Conflict):
        registry.create_version(new_version("brand-new", flavor="boom"))
    assert registry.get_model("churn").latest_version == 1
    assert registry.create_version(new_version("churn")).number == 2
    with pytest.raises(NotFound):
        registry.get_model("brand-new")


def test_metadata_is_stored_as_json_gives_it_back(registry: SqlRegistry) -> None:
    """numpy numbers and arrays, tuples and datetimes become JSON values; what create returns equals what get does."""
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    created = registry.create_version(new_version("m", metadata={
        "err": np.float32(0.5), "shape": np.array([1, 20]), "pair": (1, 2), "when": when, "n": np.int64(3)}))
    assert dict(created.metadata) == {"err": 0.5, "shape": [1, 20], "pair": [1, 2], "when": when.isoformat(), "n": 3}
    assert registry.get_version("m", 1) == created


def test_long_unicode_tag_values(registry: SqlRegistry) -> None:
    """The longest valid tag value (1024 characters, ~3 KB of UTF-8) is stored and found.

    On PostgreSQL a B-tree index on tag values would refuse it (2704-byte entries); the index is a hash.
    """
    rng = random.Random(7)
    value = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(1024))
    registry.create_version(new_version("m", tags={"note": value}))
    registry.create_model("other", tags={"note": value})
    assert [v.number for v in registry.search_versions(tags={"note": value}).items] == [1]
    assert [m.name for m in registry.list_models(tags={"note": value}).items] == ["other"]


def _hold_write_lock(path: str, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_locked_sqlite_database_is_retried(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the write lock past busy_timeout: the write is retried until it gets through."""
    monkeypatch.setattr(sql_engine, "SQLITE_BUSY_TIMEOUT_MS", 20)
    backend = SqlRegistry.from_url(sqlite_url)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(sa.make_url(sqlite_url).database, 0.3, locked))
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        assert backend.create_version(new_version("m")).number == 1
        assert time.monotonic() - started >= 0.2  # it really waited for the lock
    finally:
        holder.join()
        backend.close()


def test_a_lock_that_is_never_released_gives_up(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries are bounded: Unavailable saying the database is locked, and nothing was written."""
    monkeypatch.setattr(sql_engine, "SQLITE_BUSY_TIMEOUT_MS", 20)
    backend = SqlRegistry.from_url(sqlite_url)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(sa.make_url(sqlite_url).database, 2.0, locked))
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        with pytest.raises(Unavailable, match="database is locked"):
            backend.create_version(new_version("m"))
        assert time.monotonic() - started < 1.9
    finally:
        holder.join()
    try:
        with pytest.raises(NotFound):
            backend.get_model("m")
    finally:
        backend.close()


# --------------------------------------------------------------------------------------------- queries
def _populate(registry: SqlRegistry, versions: int = 60) -> None:
    for i in range(versions):
        registry.create_version(new_version(f"m{i % 3}", tags={"team": "a" if i % 2 else "b", "i": str(i)}))
    for m in ("m0", "m1", "m2"):
        registry.set_alias(m, "production", 2)
        registry.set_alias(m, "staging", 5)
        registry.set_tags(m, {"owner": "x"})


def test_a_page_costs_the_same_few_queries_whatever_its_size(registry: SqlRegistry) -> None:
    """No N+1: tags and aliases of a page come in one query each."""
    _populate(registry)

    def count(call: Any) -> int:
        with Statements(registry.engine) as seen:
            call()
        return len(seen.seen)

    for call in (lambda n: registry.list_versions("m0", limit=n), lambda n: registry.search_versions(limit=n),
                 lambda n: registry.search_versions(tags={"team": "a"}, limit=n),
                 lambda n: registry.list_models(limit=n)):
        small, large = count(lambda c=call: c(2)), count(lambda c=call: c(50))
        assert small == large <= 4


def test_lookups_never_scan_a_whole_table(sqlite_url: str) -> None:
    """Lookups and the page-completing queries use indexes (SQLite's plans); only walking an index in order to
    fill a page is a scan, and it stops at the page's end."""
    registry = SqlRegistry.from_url(sqlite_url)
    try:
        _populate(registry)
        with Statements(registry.engine) as seen:
            registry.get_version("m1", 7)
            registry.resolve(ModelRef("m1", alias="production"))
            registry.resolve(ModelRef("m1"))
            registry.list_versions("m1", limit=10)
            registry.get_model("m1")
            registry.search_versions(prefix="m", limit=10)  # (with no filter at all, the total reads every model)
            registry.search_versions(alias="production", limit=10)  # a page spanning three models
            registry.list_models(alias="production")
        plans = []
        with registry.engine.connect() as conn:
            for statement, params in seen.seen:
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
                plans += [row[-1] for row in plan]
    finally:
        registry.close()
    scans = [p for p in plans if re.fullmatch(r"SCAN \w+", p)]  # "SCAN t USING INDEX …" walks an index
    assert plans and scans == [], scans


# --------------------------------------------------------------------------------------------- the platform
class _StubSlots:
    """Secrets and storage providers under names of their own, so the Platform assembles whatever stage the
    real secrets and storage plugins are at; the registry under test is the real one."""

    class Service:
        def get(self, path: str, key: str) -> str:
            raise NotFound(f"no secret {path}#{key}")

        def close(self) -> None:
            pass

    @hookimpl
    def modelyard_secret_stores(self) -> Iterator[SecretsProvider]:
        yield SecretsProvider(name="stub-secrets", factory=lambda _config, _ctx: self.Service())

    @hookimpl
    def modelyard_artifact_stores(self) -> Iterator[StorageProvider]:
        yield StorageProvider(name="stub-storage", factory=lambda _config, _ctx: self.Service())


def _platform(tmp_path: Path, registry: dict[str, Any]) -> Platform:
    pm = get_plugin_manager(plugins=[("stub-slots", _StubSlots())])
    return Platform.from_config({"registry": registry, "secrets": {"use": "stub-secrets"},
                                 "storage": {"use": "stub-storage"}, "platform": {"data_dir": str(tmp_path)}},
                                plugin_manager=pm)


def test_the_platform_assembles_the_sql_registry(tmp_path: Path, url: str) -> None:
    """``[registry] use = "sql"`` with a URL: the facade's calls reach the database."""
    with _platform(tmp_path / "data", {"use": "sql", "url": url, "pool_size": 2}) as platform:
        assert isinstance(platform.registry_backend, SqlRegistry)
        platform.registry.create_model("churn", tags={"team": "growth"})
        platform.registry.set_tags("churn", {"tier": "1"})
        assert dict(platform.registry.get_model("churn").tags) == {"team": "growth", "tier": "1"}
        assert [e.action for e in platform.registry_backend.list_audit().items] == ["models:tag", "models:create"]
    reopened = SqlRegistry.from_url(url)
    try:
        assert reopened.get_model("churn").name == "churn"
    finally:
        reopened.close()


def test_the_platform_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    """Without a URL the registry is ``<data_dir>/registry.db``."""
    with _platform(tmp_path, {"use": "sql"}) as platform:
        assert platform.registry_backend.url == f"sqlite:///{tmp_path / 'registry.db'}"
    assert (tmp_path / "registry.db").exists()


def test_the_platform_rejects_bad_registry_config(tmp_path: Path) -> None:
    """Config is validated against SqlConfig, every problem reported at once."""
    with pytest.raises(ConfigError) as info:
        _platform(tmp_path, {"use": "sql", "pool_sise": 3, "echo": "yes"})
    report = str(info.value)
    assert "did you mean 'pool_size'" in report and "[registry] echo" in report and "2 errors" in report


def test_the_platform_names_the_registry_that_cannot_start(tmp_path: Path) -> None:
    """An unreachable database stops assembly with the provider's name and the reason."""
    with pytest.raises(PluginError, match=r"registry provider 'sql' failed to start: .*unavailable"):
        _platform(tmp_path, {"use": "sql", "url": "postgresql+psycopg://postgres@127.0.0.1:1/x"})


def test_the_platform_with_the_embedded_defaults(tmp_path: Path) -> None:
    """The brief's exact config, every other slot on its default provider."""
    platform = Platform.from_config({"registry": {"use": "sql", "url": f"sqlite:///{tmp_path}/r.db"},
                                     "platform": {"data_dir": str(tmp_path)}})
    with platform:
        assert isinstance(platform.registry_backend, SqlRegistry)
        assert platform.registry.create_model("m").name == "m"


# --------------------------------------------------------------------------------------------- benchmark
def test_the_benchmark_script_runs(tmp_path: Path) -> None:
    """``benchmarks/registry.py`` keeps working (a small run; the numbers are its own business)."""
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "registry.py"), "--versions", "150",
                          "--samples", "50", "--url", f"sqlite:///{tmp_path}/bench.db"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for op in ("list_versions", "list_models", "get_version", "resolve", "get_model"):
        assert op in out.stdout
    assert "p99" in out.stdout and ("PASS" in out.stdout or "FAIL" in out.stdout)
