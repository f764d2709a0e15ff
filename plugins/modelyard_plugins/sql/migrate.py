"""Alembic, run from code: bring a registry database to the newest schema, or check that it is there.

Several processes may start against one fresh database at once (API servers behind a load balancer, the
conformance kit's writer processes), so the upgrade runs inside one transaction that first takes the database's
write lock — ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL. The second process waits, then finds
the schema current and does nothing. Both databases have transactional DDL, so a failed upgrade leaves nothing.
"""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

#: Where the revisions live, as a package resource (works from a wheel and an editable install alike).
SCRIPT_LOCATION = "modelyard_plugins.sql:migrations"
# Any constant identifies "the registry's migration lock" among other advisory locks (ASCII "modelyrd").
_PG_LOCK_KEY = 0x6D6F64656C797264


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config for the registry's revisions; ``connection`` is what ``env.py`` migrates."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


class SchemaError(RuntimeError):
    """The database's schema is not one this version of the plugin can use; the message says why and what to do."""


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision shipped with this version of the plugin."""
    head = _script().get_current_head()
    assert head is not None, "the sql registry ships at least one migration"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision a database is at (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def _check_known(current: str | None) -> None:
    known = {rev.revision for rev in _script().walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(f"the database schema is at revision {current!r}, which this version of modelyard does "
                          f"not know (its newest is {head_revision()!r}); it was written by a newer modelyard — "
                          "upgrade modelyard")


def upgrade(engine: sa.Engine) -> str:
    """Migrate the database to head under the write lock; returns the revision it was at before."""
    with engine.connect() as conn:
        conn.execution_options(write=True)  # SQLite: BEGIN IMMEDIATE (engine.py)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            before = current_revision(conn)
            if before != head_revision():
                _check_known(before)
                command.upgrade(alembic_config(conn), "head")
    return before or "empty"


def check_current(engine: sa.Engine) -> None:
    """Raise :class:`SchemaError` when the database is not at head, saying how to get there."""
    with engine.connect() as conn:
        current = current_revision(conn)
    _check_known(current)
    if current != head_revision():
        raise SchemaError(f"the database schema is at revision {current or 'none (empty database)'}, this "
                          f"version of modelyard needs {head_revision()}; start with migrate = true to upgrade it")
