"""offline decisions merged from a gate's journal, exactly once (issue 18)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offline_merges",
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("gate", sa.String(length=60), nullable=False),
        sa.Column(
            "journal_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("journal_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "access_event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("conflict", sa.String(length=100), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("merged_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_offline_merges")),
    )


def downgrade() -> None:
    op.drop_table("offline_merges")
