"""harden auth (issue 13 items 6-10, issue 16 item 4): setup codes, login throttles, known
devices, operator sites, API key expiry and kiosk binding

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_sites",
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operator_accounts.id"],
            name=op.f("fk_operator_sites_operator_id_operator_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_operator_sites_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("operator_id", "site_id", name=op.f("pk_operator_sites")),
    )
    # Accounts made before sites were scoped keep what they could see: every existing site.
    op.execute(
        "INSERT INTO operator_sites (operator_id, site_id) "
        "SELECT o.id, s.id FROM operator_accounts o, sites s WHERE o.role <> 'admin'"
    )
    op.create_table(
        "setup_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setup_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_setup_codes_code_hash")),
    )
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_table(
        "known_devices",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operator_accounts.id"],
            name=op.f("fk_known_devices_operator_id_operator_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_known_devices")),
    )
    op.create_index(
        op.f("ix_known_devices_operator_id"), "known_devices", ["operator_id"], unique=False
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("kiosk_access_point_id", sa.String(length=40), nullable=True))
        batch.create_index(
            op.f("ix_api_keys_kiosk_access_point_id"), ["kiosk_access_point_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_kiosk_access_point_id"))
        batch.drop_column("kiosk_access_point_id")
        batch.drop_column("expires_at")
    op.drop_index(op.f("ix_known_devices_operator_id"), table_name="known_devices")
    op.drop_table("known_devices")
    op.drop_table("login_throttles")
    op.drop_table("setup_codes")
    op.drop_table("operator_sites")
