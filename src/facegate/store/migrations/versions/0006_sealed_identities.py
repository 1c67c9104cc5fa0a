"""sealed identities (issue 13 item 15): person_identities.sealed and unit_index, and each
site's wrapped field key

The plaintext columns stay for the moment: rows written before this revision are sealed and
blanked on first start, where the site key is at hand (``seal_plaintext_identities``); a
migration has no site key.

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-03 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_field_keys",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=80), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_site_field_keys_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_field_keys")),
    )
    with op.batch_alter_table("person_identities") as batch:
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("unit_index", sa.String(length=64), nullable=True))
        batch.create_index(op.f("ix_person_identities_unit_index"), ["unit_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("person_identities") as batch:
        batch.drop_index(op.f("ix_person_identities_unit_index"))
        batch.drop_column("unit_index")
        batch.drop_column("sealed")
    op.drop_table("site_field_keys")
