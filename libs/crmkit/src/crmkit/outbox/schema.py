"""Tables every service database has: the outbox it publishes from and the processed-event log
its consumers deduplicate with. `create_tables` is called from each service's first migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

OUTBOX_CHANNEL = "crm_outbox"
# Arbitrary but fixed: the key of the transaction lock that serialises outbox commits.
OUTBOX_LOCK_KEY = 7_106_512_001
RELAY_LEADER_KEY = 7_106_512_002

metadata = MetaData()

outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Index("outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    Index("outbox_published_at", "published_at"),
)

processed_events = Table(
    "processed_events", metadata,
    Column("consumer", Text, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "event_id"),
)


def create_tables() -> None:
    """For use inside an Alembic migration."""
    from alembic import op

    metadata.create_all(op.get_bind())


def drop_tables() -> None:
    from alembic import op

    metadata.drop_all(op.get_bind())
