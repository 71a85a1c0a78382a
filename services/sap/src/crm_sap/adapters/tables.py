"""The SAP integration's database (SQLAlchemy Core): its copies of what it sends, the durable
outbound queue, the id mapping with each record's sync state, and the inbound watermarks."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Integer, MetaData, Table, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# The CRM's customers and orders as far as SAP needs them (kept from the events).
customers = Table(
    "customers", metadata,
    Column("customer_id", Uuid, primary_key=True),
    Column("data", JSONB, nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

orders = Table(
    "orders", metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The durable outbound queue: one row per CRM change, applied in id order per record.
changes = Table(
    "changes", metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("crm_id", Uuid, nullable=False),
    Column("operation", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("event_id", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("done_at", DateTime(timezone=True)),
    Index("changes_open", "kind", "crm_id", "id", postgresql_where=text("state IN ('pending', 'parked')")),
    Index("changes_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
)

# The id mapping and each record's sync state (R-SAP-03).
sync_records = Table(
    "sync_records", metadata,
    Column("kind", Text, primary_key=True),
    Column("crm_id", Uuid, primary_key=True),
    Column("sap_number", Text, nullable=False, server_default=""),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("last_synced_at", DateTime(timezone=True)),
    # What SAP returned that later calls need: address id, item numbers, ETag.
    Column("sap_data", JSONB, nullable=False, server_default="{}"),
    Column("customer_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("sync_records_sap_number", "kind", "sap_number"),
    Index("sync_records_state", "state", "updated_at"),
)

# Delta pulls: how far each entity set has been read, and what was already published.
watermarks = Table(
    "watermarks", metadata,
    Column("entity_set", Text, primary_key=True),
    Column("value", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

inbound_seen = Table(
    "inbound_seen", metadata,
    Column("entity_set", Text, primary_key=True),
    Column("sap_number", Text, primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
