"""The notifications database schema (SQLAlchemy Core). Alembic migrations are written from it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

rules = Table(
    "rules", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("event_subject", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("recipients", JSONB, nullable=False),
    # [{kind, url, secret, locale}]
    Column("robots", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", Text, nullable=False, server_default=""),
    # The claims of who saved the rule: what its robots may carry (domain/audience.py).
    Column("owner_access", JSONB),
    Index("rules_subject", "event_subject"),
)

# The last sequence handed out per recipient: the row lock orders a recipient's items.
inbox_sequences = Table(
    "inbox_sequences", metadata,
    Column("recipient_id", Text, primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)

inbox_items = Table(
    "inbox_items", metadata,
    Column("id", Uuid, primary_key=True),
    Column("recipient_id", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("link", Text, nullable=False, server_default=""),
    Column("event_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("read_at", DateTime(timezone=True)),
    UniqueConstraint("recipient_id", "sequence", name="inbox_items_recipient_sequence"),
    # One event never lands twice in one person's inbox.
    UniqueConstraint("event_id", "recipient_id", name="inbox_items_event_recipient"),
    Index("inbox_items_unread", "recipient_id", postgresql_where=text("read_at IS NULL")),
)

preferences = Table(
    "preferences", metadata,
    Column("user_id", Text, primary_key=True),
    # {kind: [channel, …]}
    Column("channels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("quiet_start", Text),
    Column("quiet_end", Text),
    Column("time_zone", Text, nullable=False, server_default="Asia/Shanghai"),
    Column("daily_digest", Boolean, nullable=False, server_default="false"),
    Column("digest_hour", Integer, nullable=False, server_default="8"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

webhooks = Table(
    "webhooks", metadata,
    Column("id", Uuid, primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_types", JSONB, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # The HMAC key; it must be readable to sign, so it is shown once and never returned again.
    Column("secret", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False, server_default=""),
    # The claims of who created the webhook: what it may carry (domain/audience.py).
    Column("owner_access", JSONB),
)

# The durable delivery queue and its log: one row per event × recipient × channel.
deliveries = Table(
    "deliveries", metadata,
    Column("id", Uuid, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("kind", Text, nullable=False),
    # Email address or URL.
    Column("target", Text, nullable=False),
    # What to send: for email {title, body, html, link, locale}; for webhooks the JSON body; for
    # robots {title, body, link, secret}.
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    # Sent with the day's digest rather than on its own.
    Column("digest", Boolean, nullable=False, server_default="false"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    # One event never notifies one recipient twice on one channel.
    UniqueConstraint("event_id", "recipient", "channel", name="deliveries_event_recipient_channel"),
    Index("deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index("deliveries_created_id", "created_at", "id"),
)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("delivery_id", Uuid, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text, nullable=False),
    Column("error", Text, nullable=False, server_default=""),
    Column("duration_ms", Integer, nullable=False, server_default="0"),
    Index("delivery_attempts_delivery", "delivery_id", "attempt"),
)
