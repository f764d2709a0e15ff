"""The registry's first schema: models, versions, tags, aliases, deployments and audit.

Revision ID: 0001
Revises:
Create Date: 2024-11-24

Written out in full rather than imported from ``tables.py``: a migration is a snapshot of the schema at one
point in time and must not change when the tables module does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _name() -> sa.types.TypeEngine:
    # byte-wise comparison on PostgreSQL too (see tables.name_type)
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def _when() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", _name(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_models"),
    )
    op.create_table(
        "versions",
        sa.Column("model", _name(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("flavor", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=True),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["models.name"], name="fk_versions_model_models", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "number", name="pk_versions"),
    )
    op.create_index("ix_versions_digest", "versions", ["digest"])
    op.create_index("ix_versions_model_number_desc", "versions", [sa.column("model"), sa.column("number").desc()])
    op.create_table(
        "model_tags",
        sa.Column("model", _name(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["models.name"], name="fk_model_tags_model_models", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "key", name="pk_model_tags"),
    )
    op.create_index("ix_model_tags_value", "model_tags", ["value"], postgresql_using="hash")
    op.create_table(
        "version_tags",
        sa.Column("model", _name(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model", "number"], ["versions.model", "versions.number"],
                                name="fk_version_tags_model_number_versions", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "number", "key", name="pk_version_tags"),
    )
    # hash on PostgreSQL: tag values can exceed a B-tree entry's 2704 bytes
    op.create_index("ix_version_tags_value", "version_tags", ["value"], postgresql_using="hash")
    op.create_table(
        "aliases",
        sa.Column("model", _name(), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(["model", "number"], ["versions.model", "versions.number"],
                                name="fk_aliases_model_number_versions", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "alias", name="pk_aliases"),
    )
    op.create_index("ix_aliases_model_number", "aliases", ["model", "number"])
    op.create_index("ix_aliases_alias", "aliases", ["alias"])
    op.create_table(
        "deployments",
        sa.Column("name", _name(), nullable=False),
        sa.Column("model", _name(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.String(64), nullable=False),
        sa.Column("requested_ref", sa.Text(), nullable=False),
        sa.Column("batching", sa.JSON(), nullable=True),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_deployments"),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_resource_id", "audit", ["resource", "id"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("deployments")
    op.drop_table("aliases")
    op.drop_table("version_tags")
    op.drop_table("model_tags")
    op.drop_table("versions")
    op.drop_table("models")
