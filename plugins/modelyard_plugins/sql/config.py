"""The ``[registry]`` section of the ``sql`` provider."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class SqlConfig:
    """Options of the SQL registry.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/registry.db`` or ``postgresql+psycopg://user:pw@host/db``
    (``postgresql://`` is read as psycopg). Left out, the registry lives in ``<data_dir>/registry.db``.
    ``migrate`` upgrades the schema to the newest Alembic revision on start; turned off, the registry refuses to
    start on a database whose schema is not current.
    """

    url: str | None = None
    pool_size: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    echo: bool = False
    migrate: bool = True
