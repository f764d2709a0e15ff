"""Alembic environment of the SQL registry, run programmatically by :func:`modelyard_plugins.sql.migrate.upgrade`.

The caller passes an open connection, already inside a transaction that holds the database's write lock, in
``config.attributes["connection"]``; nothing here opens connections or reads an ini file. To write a new
revision::

    alembic -x url=sqlite:///scratch.db -c /dev/null revision --autogenerate ...  # or write it by hand

A revision file goes into ``versions/`` and is named ``NNNN_what.py``; the test suite checks that a database
migrated to head matches ``modelyard_plugins.sql.tables.metadata`` exactly.
"""

from __future__ import annotations

from alembic import context

from modelyard_plugins.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the SQL registry's migrations run through modelyard_plugins.sql.migrate.upgrade(), "
                       "which passes a connection in config.attributes['connection']")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables, and needs named constraints (tables.py).
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
