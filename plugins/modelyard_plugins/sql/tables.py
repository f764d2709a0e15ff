"""The registry's tables: database rows, not domain types (STYLE 14) — :mod:`.mapping` converts at the edge.

The tables live in their own SQLAlchemy registry and :data:`metadata` (not ``SQLModel.metadata``), so that Alembic
compares and migrates exactly these tables and a second plugin's sqlmodel tables never leak in. Later issues add
tables here *and* an Alembic revision under ``migrations/versions``; ``tests/plugins/sql`` proves the two agree.

Keys are natural (model name, version number) because names are immutable: the hot lookups — a version by
``(model, number)``, an alias by ``(model, alias)`` — are then single primary-key probes with no join.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

#: Constraint names are fixed by convention so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The registry's tables and nothing else: what Alembic migrates and compares.
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
_registry = registry(metadata=metadata)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps the zone (``timestamptz``); SQLite has no zone type, so values are stored as naive UTC and
    given their zone back on the way out. Records only ever see aware datetimes.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def name_type(length: int = 128) -> sa.types.TypeEngine[str]:
    """A name column: compared byte by byte everywhere.

    SQLite compares with BINARY already; PostgreSQL would use the database's locale (where ``a-b`` sorts after
    ``ab``), so names take the ``C`` collation there. Ordering by name then agrees across databases, and a
    name-prefix range scan (``name >= p AND name < p + U+10FFFF``) is exact and uses the index.
    """
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


class _Row(SQLModel, registry=_registry):
    """Base of the registry's table classes."""


def _json(nullable: bool = False) -> Any:
    return Field(sa_type=sa.JSON, nullable=nullable)


def _when() -> Any:
    return Field(sa_type=UTCDateTime, nullable=False)


class ModelRow(_Row, table=True):
    """One model; ``latest_version`` is the per-model counter that numbers versions."""

    __tablename__ = "models"

    name: str = Field(sa_type=name_type(), primary_key=True)
    description: str = Field(default="", sa_type=sa.Text)
    latest_version: int = Field(default=0)
    created_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()


class VersionRow(_Row, table=True):
    """One immutable version. The primary key ``(model, number)`` is the ``unique (model, number)`` guarantee."""

    __tablename__ = "versions"
    __table_args__ = (sa.Index(None, "digest"),)

    model: str = Field(sa_type=name_type(), primary_key=True, foreign_key="models.name", ondelete="CASCADE")
    number: int = Field(primary_key=True)
    flavor: str = Field(sa_type=sa.String(64))
    digest: str = Field(sa_type=sa.String(64))
    size: int = Field(sa_type=sa.BigInteger)
    signature: dict[str, Any] | None = _json(nullable=True)
    requirements: list[str] = _json()
    # "metadata" is reserved on declarative classes; the column keeps its natural name.
    meta: dict[str, Any] = Field(sa_column=sa.Column("metadata", sa.JSON, nullable=False))
    lineage: dict[str, Any] = _json()
    description: str = Field(default="", sa_type=sa.Text)
    created_at: dt.datetime = _when()


class ModelTagRow(_Row, table=True):
    """A tag on a model."""

    __tablename__ = "model_tags"
    __table_args__ = (sa.Index(None, "value", postgresql_using="hash"),)

    model: str = Field(sa_type=name_type(), primary_key=True, foreign_key="models.name", ondelete="CASCADE")
    key: str = Field(sa_type=sa.String(128), primary_key=True)
    value: str = Field(sa_type=sa.Text)


class VersionTagRow(_Row, table=True):
    """A tag on one version (the only mutable part of a version)."""

    __tablename__ = "version_tags"
    __table_args__ = (
        sa.ForeignKeyConstraint(["model", "number"], ["versions.model", "versions.number"], ondelete="CASCADE"),
        # Finds the versions carrying a tag value. A hash index on PostgreSQL: a B-tree entry is limited to
        # 2704 bytes, and a valid tag value (1024 characters) can take 4096. SQLite has no such limit.
        sa.Index(None, "value", postgresql_using="hash"),
    )

    model: str = Field(sa_type=name_type(), primary_key=True)
    number: int = Field(primary_key=True)
    key: str = Field(sa_type=sa.String(128), primary_key=True)
    value: str = Field(sa_type=sa.Text)


class AliasRow(_Row, table=True):
    """``alias`` of ``model`` points at version ``number``; the primary key is the ``unique (model, alias)``."""

    __tablename__ = "aliases"
    __table_args__ = (
        sa.ForeignKeyConstraint(["model", "number"], ["versions.model", "versions.number"], ondelete="CASCADE"),
        # "which aliases point at these versions" is asked for every page of versions
        sa.Index(None, "model", "number"),
        # "the versions carrying alias X" (search and list filters) across models
        sa.Index(None, "alias"),
    )

    model: str = Field(sa_type=name_type(), primary_key=True)
    alias: str = Field(sa_type=sa.String(64), primary_key=True)
    number: int
    updated_at: dt.datetime = _when()


class DeploymentRow(_Row, table=True):
    """The record of a deployment, mirroring :class:`modelyard.types.Deployment`."""

    __tablename__ = "deployments"

    name: str = Field(sa_type=name_type(), primary_key=True)
    model: str = Field(sa_type=name_type())
    version: int
    runtime: str = Field(sa_type=sa.String(64))
    requested_ref: str = Field(default="", sa_type=sa.Text)
    batching: dict[str, Any] | None = _json(nullable=True)
    replicas: int = Field(default=1)
    options: dict[str, Any] = _json()
    state: str = Field(sa_type=sa.String(16))
    message: str = Field(default="", sa_type=sa.Text)
    generation: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()


class RevisionRow(_Row, table=True):
    """A change counter per kind of record (``deployments``): serving processes poll it to notice changes."""

    __tablename__ = "revisions"

    name: str = Field(sa_type=sa.String(64), primary_key=True)
    value: int = Field(default=0, sa_type=sa.BigInteger)


class ServingRow(_Row, table=True):
    """What one serving process reports it serves for one deployment (written on change and on heartbeat)."""

    __tablename__ = "serving"

    process: str = Field(sa_type=sa.String(200), primary_key=True)
    deployment: str = Field(sa_type=name_type(), primary_key=True)
    host: str = Field(default="", sa_type=sa.Text)
    pid: int = Field(default=0)
    model: str = Field(default="", sa_type=sa.Text)
    version: int = Field(default=0)
    generation: int = Field(default=0, sa_type=sa.BigInteger)
    state: str = Field(sa_type=sa.String(16))
    message: str = Field(default="", sa_type=sa.Text)
    seen_at: dt.datetime = _when()


class AuditRow(_Row, table=True):
    """One audit event; ``id`` orders events (newest first is ``id`` descending)."""

    __tablename__ = "audit"
    __table_args__ = (sa.Index(None, "resource", "id"),)

    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
    id: int | None = Field(default=None, primary_key=True,
                           sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    at: dt.datetime = _when()
    principal: str = Field(sa_type=sa.Text)
    action: str = Field(sa_type=sa.Text)
    resource: str = Field(sa_type=sa.Text)
    outcome: str = Field(sa_type=sa.String(16))
    source: str = Field(sa_type=sa.Text)
    details: dict[str, Any] = _json()


# Core handles for the queries: the backend reads and writes through SQLAlchemy Core, not the ORM, because
# mapping rows straight to domain records is several times cheaper than building ORM objects first.
models: sa.Table = ModelRow.__table__  # type: ignore[assignment]
versions: sa.Table = VersionRow.__table__  # type: ignore[assignment]
model_tags: sa.Table = ModelTagRow.__table__  # type: ignore[assignment]
version_tags: sa.Table = VersionTagRow.__table__  # type: ignore[assignment]
aliases: sa.Table = AliasRow.__table__  # type: ignore[assignment]
deployments: sa.Table = DeploymentRow.__table__  # type: ignore[assignment]
revisions: sa.Table = RevisionRow.__table__  # type: ignore[assignment]
serving: sa.Table = ServingRow.__table__  # type: ignore[assignment]
audit: sa.Table = AuditRow.__table__  # type: ignore[assignment]

# Searches list versions by (model, number DESC); without an index in that order a page needs every matching
# version sorted first (the primary key serves one model's listing, read backwards).
sa.Index("ix_versions_model_number_desc", versions.c.model, versions.c.number.desc())

__all__ = [
    "AliasRow", "AuditRow", "DeploymentRow", "ModelRow", "ModelTagRow", "RevisionRow", "ServingRow",
    "UTCDateTime", "VersionRow", "VersionTagRow", "aliases", "audit", "deployments", "metadata", "model_tags",
    "models", "name_type", "revisions", "serving", "version_tags", "versions",
]  # fmt: skip
