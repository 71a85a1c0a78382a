"""Who signed a contract's deal (its owner at signing): the credit, kept when the customer moves to
another owner (issue 12, "Ownership after reassignment and merge").

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contracts", sa.Column("signed_by", sa.Text, nullable=False, server_default=""))
    # Signed before this column existed: credited to whoever owns it now, the best record there is.
    op.execute("UPDATE contracts SET signed_by = owner_id WHERE sign_date IS NOT NULL")


def downgrade() -> None:
    op.drop_column("contracts", "signed_by")
