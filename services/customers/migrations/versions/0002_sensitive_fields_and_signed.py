"""Sensitive fields at rest (R-SEC-04) and finance visibility (R-SEC-02).

- customers.tax_id_index: blind index of the tax ID; the one-live-customer-per-tax-ID rule moves
  to a unique index on it.
- customers.bank_accounts: JSONB list, account numbers sealed.
- customers.has_signed_contract: set by the contracts service's contract.signed event.

A migration cannot know the keys, so existing tax IDs and phones stay plaintext here and the
service reads them as they are; `crm-customers reencrypt` seals them and fills tax_id_index
(rollout order: docs/services/customers.md). The plaintext-era unique index on tax_id stays until
then: it keeps legacy rows unique and never conflicts on sealed values (random nonces).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("tax_id_index", sa.Text))
    op.add_column("customers", sa.Column("bank_accounts", postgresql.JSONB, nullable=False,
                                         server_default=sa.text("'[]'::jsonb")))
    op.add_column("customers", sa.Column("has_signed_contract", sa.Boolean, nullable=False,
                                         server_default="false"))
    op.create_index("customers_tax_id_index_live", "customers", ["tax_id_index"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL AND tax_id_index IS NOT NULL"))


def downgrade() -> None:
    # Only before `reencrypt` has run: afterwards tax_id and phones hold ciphertext that the
    # 0001-era code cannot read.
    op.drop_index("customers_tax_id_index_live", table_name="customers")
    op.drop_column("customers", "has_signed_contract")
    op.drop_column("customers", "bank_accounts")
    op.drop_column("customers", "tax_id_index")
