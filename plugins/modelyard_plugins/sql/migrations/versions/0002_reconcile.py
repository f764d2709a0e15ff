"""Desired state, reconciled: a generation per deployment, a change counter, and what each process serves.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Deployment records are the desired state; every serving process polls ``revisions`` ('deployments') to notice
a change, converges its runtime to the records and reports what it serves in ``serving``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _name() -> sa.types.TypeEngine:
    return sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("deployments") as batch:
        batch.alter_column("generation", server_default=None)
    op.create_table(
        "revisions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_revisions"),
    )
    op.create_table(
        "serving",
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("deployment", _name(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process", "deployment", name="pk_serving"),
    )


def downgrade() -> None:
    op.drop_table("serving")
    op.drop_table("revisions")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("generation")
