"""QR pass short codes (issue 16 item 10): the keyed hash of a pass's typed code

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only an HMAC of the code under a key derived from the site's field key: never the code.
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("code_hash", sa.String(length=64), nullable=True))
        batch.create_index("ix_credentials_site_code_hash", ["site_id", "code_hash"])


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.drop_index("ix_credentials_site_code_hash")
        batch.drop_column("code_hash")
