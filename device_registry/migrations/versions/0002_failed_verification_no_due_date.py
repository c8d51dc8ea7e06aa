"""A failed verification sets no due date: ``verifications.due_on`` may be NULL, and is for failed ones.

Before, a failed verification got a due date a year on, as a passed one does, although a scale that fails
is not fit for trade until it is verified again. Downgrading gives those rows their verification day as
due date (due at once: the conservative reading of a failure).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verifications") as batch:
        batch.alter_column("due_on", existing_type=sa.Date(), nullable=True)
    op.execute(sa.text("UPDATE verifications SET due_on = NULL WHERE NOT passed"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE verifications SET due_on = verified_on WHERE due_on IS NULL"))
    with op.batch_alter_table("verifications") as batch:
        batch.alter_column("due_on", existing_type=sa.Date(), nullable=False)
