"""The customers database schema (SQLAlchemy Core). Alembic migrations are written from it."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# customers.name_key / name_grams (migration 0004, which creates the two SQL functions): the name
# as duplicate detection compares it, and the same spelt for pg_trgm whatever the locale. Mirrored
# by crm_customers.domain.duplicates; a test keeps the two equal.
NAME_KEY_SQL = "crm_name_key(name)"
NAME_GRAMS_SQL = "crm_trigram_text(crm_name_key(name))"

industries = Table(
    "industries", metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("name_zh", Text, nullable=False, server_default=""),
)

customers = Table(
    "customers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    # Sealed (adapters/sensitive.py); plaintext only in rows older than migration 0002 until
    # `crm-customers reencrypt` has run.
    Column("tax_id", Text),
    # Blind index of the normalised tax ID: equality without the plaintext.
    Column("tax_id_index", Text),
    Column("industry", Text, ForeignKey("industries.code")),
    Column("region", Text, nullable=False, server_default=""),
    Column("origin", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("lifecycle_stage", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("addresses", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # [{bank_name, account_name, account_number (sealed)}]
    Column("bank_accounts", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # R-SEC-02: what finance's data scope sees; set by the contract.signed event.
    Column("has_signed_contract", Boolean, nullable=False, server_default="false"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False, server_default=""),
    Column("deleted_at", DateTime(timezone=True)),
    # Duplicates and merge (migration 0004): the comparable name, and the survivor of a merge.
    Column("name_key", Text, Computed(NAME_KEY_SQL, persisted=True), nullable=False),
    Column("name_grams", Text, Computed(NAME_GRAMS_SQL, persisted=True), nullable=False),
    Column("merged_into", Uuid),
    # R-CUS-06 (migration 0005): the cumulative signed amount (in signed_currency) and its tier.
    Column("signed_amount", Numeric(18, 2), nullable=False, server_default="0"),
    Column("signed_currency", Text, nullable=False, server_default=""),
    Column("tier", Text, nullable=False, server_default=""),
    # R-CUS-01: one live customer per tax ID, on the blind index.
    Index("customers_tax_id_index_live", "tax_id_index", unique=True,
          postgresql_where=text("deleted_at IS NULL AND tax_id_index IS NOT NULL")),
    # The plaintext-era index, kept while legacy rows exist (see migration 0002); on sealed values
    # (random nonces) it never conflicts.
    Index("customers_tax_id_live", "tax_id", unique=True,
          postgresql_where=text("deleted_at IS NULL AND tax_id IS NOT NULL")),
    Index("customers_name_id", "name", "id"),
    Index("customers_created_id", "created_at", "id"),
    Index("customers_updated_id", "updated_at", "id"),
    Index("customers_owner", "owner_id"),
    Index("customers_team", "team_id"),
    Index("customers_industry", "industry"),
    Index("customers_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    Index("customers_name_grams_trgm", "name_grams", postgresql_using="gin",
          postgresql_ops={"name_grams": "gin_trgm_ops"}, postgresql_where=text("deleted_at IS NULL")),
    Index("customers_merged_into", "merged_into", postgresql_where=text("merged_into IS NOT NULL")),
)

customer_tags = Table(
    "customer_tags", metadata,
    Column("customer_id", Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("tag", Text, nullable=False),
    PrimaryKeyConstraint("customer_id", "tag"),
    Index("customer_tags_tag", func.lower(Column("tag", Text))),
)

contacts = Table(
    "contacts", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("phones", ARRAY(Text), nullable=False, server_default="{}"),
    Column("email", Text, nullable=False, server_default=""),
    Column("wechat", Text, nullable=False, server_default=""),
    Column("is_key", Boolean, nullable=False, server_default="false"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

follow_ups = Table(
    "follow_ups", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False),
    Column("content", Text, nullable=False, server_default=""),
    Column("key_facts", ARRAY(Text), nullable=False, server_default="{}"),
    Column("contact_id", Uuid, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("author_id", Text, nullable=False),
    Column("author_name", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("follow_ups_timeline", "customer_id", "occurred_at", "id"),
)

# Bulk import (R-CUS-03) ------------------------------------------------------------------------

imports = Table(
    "imports", metadata,
    Column("id", Uuid, primary_key=True),
    Column("created_by", Text, nullable=False),
    # The defaults of the customers it creates (R-UX-01): the importer's owner, team, department.
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("file_name", Text, nullable=False, server_default=""),
    Column("dedup_key", Text, nullable=False),
    Column("on_match", Text, nullable=False),
    # [validating -> refused | dry_run] dry_run -> running -> done | failed (a failed or
    # interrupted commit resumes); done -> reverting -> reverted
    Column("status", Text, nullable=False),
    Column("total", Integer, nullable=False, server_default="0"),
    # {"create": n, "update": n, "skip": n, "flag": n, "reject": n}: what the dry run found
    Column("planned", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # {"created": n, "updated": n, "skipped": n, "flagged": n, "rejected": n}: what the commit did
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Migration 0004: the upload an import was started from (checked in the background) and the
    # column mapping it was started with.
    Column("upload_id", Uuid),
    Column("mapping", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("imports_created_by", "created_by", "created_at"),
)

import_rows = Table(
    "import_rows", metadata,
    Column("import_id", Uuid, ForeignKey("imports.id", ondelete="CASCADE"), nullable=False),
    Column("line", Integer, nullable=False),
    # Sealed JSON of the row's cells by field (they hold tax IDs and phones, R-SEC-04).
    Column("data", Text, nullable=False),
    # planned by the dry run: create | update | skip | flag | reject; after the commit:
    # created | updated | skipped | flagged | rejected
    Column("outcome", Text, nullable=False),
    Column("reasons", ARRAY(Text), nullable=False, server_default="{}"),
    Column("applied", Boolean, nullable=False, server_default="false"),
    Column("customer_id", Uuid),
    Column("contact_id", Uuid),             # the contact the import added (removed by a revert)
    Column("before", Text),                 # sealed JSON before-image of an updated customer
    Column("reverted", Boolean, nullable=False, server_default="false"),
    # Blind index of the row's dedup key (migration 0004): repeats within the file, found in SQL.
    Column("dedup", Text),
    PrimaryKeyConstraint("import_id", "line"),
)

import_uploads = Table(
    "import_uploads", metadata,
    Column("id", Uuid, primary_key=True),
    Column("created_by", Text, nullable=False),
    Column("file_name", Text, nullable=False, server_default=""),
    Column("size", BigInteger, nullable=False),          # declared when the upload is created
    Column("received", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("import_uploads_created_by", "created_by", "created_at"),
)

import_upload_chunks = Table(
    "import_upload_chunks", metadata,
    Column("upload_id", Uuid, ForeignKey("import_uploads.id", ondelete="CASCADE"), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("upload_id", "offset"),
)

# Duplicates and merge (R-CUS-03) -----------------------------------------------------------------

customer_merges = Table(
    "customer_merges", metadata,
    Column("id", Uuid, primary_key=True),
    Column("surviving_id", Uuid, nullable=False),
    Column("merged_id", Uuid, nullable=False),
    Column("merged_by", Text, nullable=False),
    Column("merged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("moved", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Sealed JSON before-images of both customers (they hold tax IDs).
    Column("before", Text, nullable=False, server_default=""),
    Index("customer_merges_surviving", "surviving_id"),
    Index("customer_merges_merged", "merged_id", unique=True),
)

duplicate_dismissals = Table(
    "duplicate_dismissals", metadata,
    Column("customer_a", Uuid, nullable=False),
    Column("customer_b", Uuid, nullable=False),
    Column("dismissed_by", Text, nullable=False),
    Column("dismissed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("customer_a", "customer_b"),
    CheckConstraint("customer_a < customer_b", name="duplicate_dismissals_ordered"),
)
