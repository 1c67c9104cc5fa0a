"""access point liveness policy (issue 14)

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-03 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_points") as batch:
        batch.add_column(
            sa.Column("liveness", sa.String(length=16), nullable=False, server_default="passive")
        )


def downgrade() -> None:
    with op.batch_alter_table("access_points") as batch:
        batch.drop_column("liveness")
