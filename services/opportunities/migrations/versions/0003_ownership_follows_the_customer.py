"""Who won an opportunity (the credit, kept when its customer moves to another owner); records of
a customer are found by customer for reassignment and merge.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("opportunities", sa.Column("won_by", sa.Text, nullable=False, server_default=""))
    # Won before this column existed: credited to whoever owns it now, the best record there is.
    op.execute("UPDATE opportunities SET won_by = owner_id WHERE status = 'won'")
    op.create_index("quotes_customer", "quotes", ["customer_id"])
    op.create_index("requirement_requests_customer", "requirement_requests", ["customer_id"])


def downgrade() -> None:
    op.drop_index("requirement_requests_customer", "requirement_requests")
    op.drop_index("quotes_customer", "quotes")
    op.drop_column("opportunities", "won_by")
