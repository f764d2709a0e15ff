"""Connecting to the registry database: URL checks, engine options, SQLite pragmas, errors users can read.

Everything dialect-specific about *connections* lives here; :mod:`.backend` only asks for a read or a write
transaction. Only SQLite and PostgreSQL (psycopg 3) are supported: the backend relies on ``INSERT … ON CONFLICT``
and ``RETURNING``, which both have.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from modelyard.errors import Unavailable
from sqlalchemy import event

#: How long SQLite waits for another writer's lock before reporting "database is locked" (the backend then
#: retries a bounded number of times).
SQLITE_BUSY_TIMEOUT_MS = 5_000
#: How long a PostgreSQL connection attempt may take before the registry reports the database unavailable.
PG_CONNECT_TIMEOUT_S = 10

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def default_url(data_dir: Path) -> str:
    """``sqlite:///<data_dir>/registry.db``."""
    return sa.URL.create("sqlite", database=str(Path(data_dir) / "registry.db")).render_as_string()


def redact_url(url: str | sa.URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    return _PASSWORD.sub(r"\1***@", url)


def parse_url(url: str) -> sa.URL:
    """Parse and normalise a registry URL; :class:`Unavailable` says what is wrong with a bad one.

    ``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy would otherwise look for psycopg2).
    """
    if not isinstance(url, str) or not url.strip():
        raise Unavailable("registry database URL is empty: expected e.g. sqlite:///path/registry.db or "
                          "postgresql+psycopg://user@host:5432/db")
    try:
        parsed = sa.make_url(url.strip())
    except sa.exc.ArgumentError:
        raise Unavailable(f"registry database URL {redact_url(url)!r} is not a valid database URL: expected e.g. "
                          "sqlite:///path/registry.db or postgresql+psycopg://user@host:5432/db") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    if backend == "postgresql" and driver == "psycopg":
        return parsed
    raise Unavailable(f"registry database URL {redact_url(parsed)!r}: unsupported database "
                      f"{parsed.drivername!r}; the sql registry supports sqlite:/// and postgresql+psycopg://")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays (validation metrics, tensor shapes) and datetimes are common in metadata.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: JSON columns are written with this: strict (no NaN, which PostgreSQL refuses) and compact.
json_dumps = functools.partial(json.dumps, default=_json_default, allow_nan=False, separators=(",", ":"))
#: ... and read with msgspec (a Litestar dependency), about five times faster than ``json.loads``: a page of 100
#: versions decodes 400 JSON values, the largest single cost of listing them.
json_loads = msgspec.json.decode


def create_engine(url: str | sa.URL, *, pool_size: int = 5, echo: bool = False) -> sa.Engine:
    """An engine for a registry URL, with the per-dialect settings the backend relies on (no I/O yet)."""
    parsed = parse_url(url) if isinstance(url, str) else url
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps, "json_deserializer": json_loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise Unavailable("registry database URL: an in-memory SQLite database cannot be shared between "
                              "connections; use a file, e.g. sqlite:///registry.db")
        kwargs.update(pool_size=pool_size, poolclass=sa.pool.QueuePool,
                      connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    else:
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        # pre-ping: a server restart otherwise surfaces as one failed request per pooled connection
        kwargs.update(pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except ImportError as exc:
        raise Unavailable(f"registry database URL {redact_url(parsed)!r} needs a driver that is not installed "
                          f"({exc}): pip install 'modelyard[postgres]'") from None
    except sa.exc.ArgumentError as exc:
        raise Unavailable(f"registry database URL {redact_url(parsed)!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_events(engine)
    return engine


def _sqlite_events(engine: sa.Engine) -> None:
    """Pragmas on every new connection, and explicit transactions the backend controls.

    pysqlite's own transaction handling starts transactions lazily and never as ``BEGIN IMMEDIATE``. Writers must
    take the write lock up front: a deferred transaction that reads and then tries to write fails at once with
    "database is locked" when another process committed in between (WAL cannot upgrade a stale snapshot), while
    ``BEGIN IMMEDIATE`` queues behind ``busy_timeout`` instead. Readers use plain ``BEGIN`` and never block
    writers in WAL mode.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit at the driver; we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # NORMAL is durable across application crashes in WAL mode and avoids an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


# --------------------------------------------------------------------------------------------- errors
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database schema is locked")
# serialization_failure, deadlock_detected, lock_not_available
_PG_TRANSIENT = ("40001", "40P01", "55P03")


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """Whether a failed transaction may simply be run again: a lock held by another writer, a deadlock, a
    connection that died (the pool replaces it)."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_TRANSIENT:
        return True
    return isinstance(exc, sa.exc.OperationalError) and any(m in str(orig).lower() for m in _SQLITE_TRANSIENT)


def unavailable(exc: BaseException, url: str) -> Unavailable:
    """A database failure as the error users see: the database (password hidden) and the driver's first line."""
    orig = getattr(exc, "orig", None) or exc
    detail = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return Unavailable(f"registry database {url} is unavailable: {detail}")
