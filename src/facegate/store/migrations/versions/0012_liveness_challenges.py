"""Liveness challenges in the database (issue 14 item 3): every server process can check an
answer, each nonce used once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "liveness_challenges",
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("prompt", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce_hash", name=op.f("pk_liveness_challenges")),
    )
    op.create_index(
        op.f("ix_liveness_challenges_scope"), "liveness_challenges", ["scope"], unique=False
    )
    op.create_index(
        op.f("ix_liveness_challenges_expires_at"),
        "liveness_challenges",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_liveness_challenges_expires_at"), table_name="liveness_challenges")
    op.drop_index(op.f("ix_liveness_challenges_scope"), table_name="liveness_challenges")
    op.drop_table("liveness_challenges")
