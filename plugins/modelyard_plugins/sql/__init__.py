"""modelyard plugin ``sql``: the registry slot on SQLite (the embedded default) or PostgreSQL.

Config::

    [registry]
    use = "sql"
    url = "postgresql+psycopg://ml:${secret:db/ml#password}@db:5432/ml"   # default: sqlite in data_dir
    pool_size = 5
    migrate = true          # upgrade the schema to the newest Alembic revision on start

SQLAlchemy itself is imported when the provider starts, not when the plugin is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelyard import hookimpl
from modelyard.providers import ProviderContext, RegistryProvider

from modelyard_plugins.sql.config import SqlConfig

if TYPE_CHECKING:
    from modelyard_plugins.sql.backend import SqlRegistry


def create_registry(config: SqlConfig, ctx: ProviderContext) -> SqlRegistry:
    """The provider factory: connect and migrate (see :meth:`SqlRegistry.from_config`)."""
    from modelyard_plugins.sql.backend import SqlRegistry

    return SqlRegistry.from_config(config, ctx)


def check_config(config: SqlConfig) -> Iterator[tuple[str | None, str]]:
    """Static check for ``modelyard check``: the URL parses, names a supported database, and its driver is
    installed. Connects to nothing."""
    if config.url is None:
        return
    import importlib.util

    from modelyard.errors import ModelyardError

    from modelyard_plugins.sql.engine import parse_url

    try:
        parsed = parse_url(config.url)
    except ModelyardError as exc:
        yield "url", str(exc)
        return
    if parsed.get_backend_name() == "postgresql" and importlib.util.find_spec("psycopg") is None:
        yield "url", "PostgreSQL needs psycopg 3, which is not installed: pip install 'modelyard[postgres]'"


@hookimpl
def modelyard_registry_backends() -> Iterator[RegistryProvider]:
    """Offer the ``sql`` registry provider."""
    yield RegistryProvider(
        name="sql",
        factory=create_registry,
        config_schema=SqlConfig,
        description="models, versions, aliases, deployments and audit in SQLite (WAL) or PostgreSQL",
        requires=("sqlalchemy", "alembic"),
        check=check_config,
    )


def __getattr__(name: str) -> Any:
    # ``from modelyard_plugins.sql import SqlRegistry`` works without importing SQLAlchemy at plugin load.
    if name == "SqlRegistry":
        from modelyard_plugins.sql.backend import SqlRegistry

        return SqlRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SqlConfig", "SqlRegistry", "create_registry", "modelyard_registry_backends"]
