"""What the owner of a rule's robots and of a webhook may read (issue 12, item 5): the access of
whoever saved the rule or created the webhook, as a principal's claims. Robots and webhooks carry
an event only when their owner may read it. Rows from before have none, and carry nothing until
they are saved again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rules", sa.Column("owner_access", postgresql.JSONB))
    op.add_column("webhooks", sa.Column("owner_access", postgresql.JSONB))


def downgrade() -> None:
    op.drop_column("webhooks", "owner_access")
    op.drop_column("rules", "owner_access")
