"""Positions of places: WGS-84 latitude and longitude (nullable) on districts, markets, stalls and planting bases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("districts", "markets", "stalls", "planting_bases")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("lat", sa.Float(), nullable=True))
            batch_op.add_column(sa.Column("lon", sa.Float(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("lon")
            batch_op.drop_column("lat")
