"""Likely duplicates and merge (R-CUS-03).

- customers.name_key: the name as duplicate detection compares it (lower case, punctuation,
  whitespace and legal-form words such as 有限公司 / Co., Ltd. removed); customers.name_grams: the
  same spelt so pg_trgm sees Chinese characters whatever the database's locale (see
  TRIGRAM_TEXT_FUNCTION). Stored generated columns, so every write path keeps them right; a
  trigram GIN index on name_grams serves the `%` / `similarity()` searches. The rules are
  mirrored in crm_customers.domain.duplicates (a test keeps the two equal).
- customers.merged_into: set on a customer merged into another (which is then soft-deleted), so a
  reference to the old id can be followed to the survivor.
- customer_merges: one row per merge, who and when, what moved, and the sealed before-image of
  both records (the audit trail's detail).
- duplicate_dismissals: pairs a user declared "not duplicates", left out of the report.
- import_rows.dedup: a blind (keyed-hash) form of a row's dedup key, so repeats within a file
  are found in the database rather than in the importing process's memory.
- imports.upload_id / imports.mapping: an import started from an upload is checked in the
  background, and needs to know the file and the column mapping it was started with.
- import_uploads / import_upload_chunks: resumable chunked uploads of an import file (the file
  lives in the database, in chunks, so any replica can take the next chunk or start the import).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Keep in step with crm_customers.domain.duplicates (name_key, trigram_text); a test compares them.
NAME_KEY_FUNCTION = r"""
CREATE OR REPLACE FUNCTION crm_name_key(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT regexp_replace(lower(value),
    '(?<![a-z0-9])(co\.?,?\s*ltd|company|corporation|corp|limited|ltd|inc|gmbh)(?![a-z0-9])\.?'
    '|股份有限公司|有限责任公司|有限公司|集团|公司|[[:space:][:punct:]、·《》“”‘’]+', '', 'g')
$$
"""
# pg_trgm builds trigrams from the characters the database's ctype calls alphanumeric: in a
# database created with the C locale (the test servers, many managed instances) that excludes
# every Chinese character, and Chinese names would have no trigrams at all. So the indexed form
# spells each non-ASCII character as three base-36 letters: an aligned trigram is the character,
# the trigrams straddling two codes carry their order; ASCII stays as it is.
TRIGRAM_TEXT_FUNCTION = r"""
CREATE OR REPLACE FUNCTION crm_trigram_text(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(string_agg(
    CASE WHEN ascii(ch) < 128 THEN ch
         ELSE substr('0123456789abcdefghijklmnopqrstuvwxyz', ascii(ch) / 1296 % 36 + 1, 1)
           || substr('0123456789abcdefghijklmnopqrstuvwxyz', ascii(ch) / 36 % 36 + 1, 1)
           || substr('0123456789abcdefghijklmnopqrstuvwxyz', ascii(ch) % 36 + 1, 1)
    END, '' ORDER BY n), '')
  FROM regexp_split_to_table(value, '') WITH ORDINALITY AS t(ch, n)
$$
"""
NAME_KEY_SQL = "crm_name_key(name)"
NAME_GRAMS_SQL = "crm_trigram_text(crm_name_key(name))"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(NAME_KEY_FUNCTION)
    op.execute(TRIGRAM_TEXT_FUNCTION)
    op.add_column("customers", sa.Column("name_key", sa.Text, sa.Computed(NAME_KEY_SQL, persisted=True),
                                         nullable=False))
    op.add_column("customers", sa.Column("name_grams", sa.Text, sa.Computed(NAME_GRAMS_SQL, persisted=True),
                                         nullable=False))
    op.create_index("customers_name_grams_trgm", "customers", ["name_grams"], postgresql_using="gin",
                    postgresql_ops={"name_grams": "gin_trgm_ops"},
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.add_column("customers", sa.Column("merged_into", sa.Uuid))
    op.create_index("customers_merged_into", "customers", ["merged_into"],
                    postgresql_where=sa.text("merged_into IS NOT NULL"))
    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("surviving_id", sa.Uuid, nullable=False),
        sa.Column("merged_id", sa.Uuid, nullable=False),
        sa.Column("merged_by", sa.Text, nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("moved", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("before", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("customer_merges_surviving", "customer_merges", ["surviving_id"])
    op.create_index("customer_merges_merged", "customer_merges", ["merged_id"], unique=True)
    op.create_table(
        "duplicate_dismissals",
        sa.Column("customer_a", sa.Uuid, nullable=False),
        sa.Column("customer_b", sa.Uuid, nullable=False),
        sa.Column("dismissed_by", sa.Text, nullable=False),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("customer_a", "customer_b"),
        sa.CheckConstraint("customer_a < customer_b", name="duplicate_dismissals_ordered"),
    )
    op.add_column("import_rows", sa.Column("dedup", sa.Text))
    op.add_column("imports", sa.Column("upload_id", sa.Uuid))
    op.add_column("imports", sa.Column("mapping", postgresql.JSONB, nullable=False,
                                       server_default=sa.text("'{}'::jsonb")))
    op.create_table(
        "import_uploads",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False, server_default=""),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("import_uploads_created_by", "import_uploads", ["created_by", "created_at"])
    op.create_table(
        "import_upload_chunks",
        sa.Column("upload_id", sa.Uuid, sa.ForeignKey("import_uploads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "offset"),
    )


def downgrade() -> None:
    op.drop_table("import_upload_chunks")
    op.drop_index("import_uploads_created_by", table_name="import_uploads")
    op.drop_table("import_uploads")
    op.drop_column("imports", "mapping")
    op.drop_column("imports", "upload_id")
    op.drop_column("import_rows", "dedup")
    op.drop_table("duplicate_dismissals")
    op.drop_index("customer_merges_merged", table_name="customer_merges")
    op.drop_index("customer_merges_surviving", table_name="customer_merges")
    op.drop_table("customer_merges")
    op.drop_index("customers_merged_into", table_name="customers")
    op.drop_column("customers", "merged_into")
    op.drop_index("customers_name_grams_trgm", table_name="customers")
    op.drop_column("customers", "name_grams")
    op.drop_column("customers", "name_key")
    op.execute("DROP FUNCTION crm_trigram_text(text)")
    op.execute("DROP FUNCTION crm_name_key(text)")
