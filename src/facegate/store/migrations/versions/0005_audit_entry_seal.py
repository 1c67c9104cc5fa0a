"""audit entries carry a seal made with the audit key kept outside the database; notice
drafts (issue 13 items 16 and 17)

Revision ID: 0005
Revises: 0007
Create Date: 2026-12-03 10:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "notice_drafts",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
        sa.Column("saved_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_notice_drafts_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_notice_drafts")),
    )


def downgrade() -> None:
    op.drop_table("notice_drafts")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("mac")
