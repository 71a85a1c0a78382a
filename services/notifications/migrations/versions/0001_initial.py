"""Rules (the defaults seeded), inbox items and sequences, preferences, webhooks, the delivery
queue and its attempts; the outbox and processed-event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crm_notifications.domain.defaults import DEFAULT_RULES, default_rule_id
from crmkit.outbox import schema as outbox_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ["delivery_attempts", "deliveries", "webhooks", "preferences", "inbox_items", "inbox_sequences", "rules"]


def _now() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    rules = op.create_table(
        "rules",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("event_subject", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("recipients", postgresql.JSONB, nullable=False),
        sa.Column("robots", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("rules_subject", "rules", ["event_subject"])
    op.create_table(
        "inbox_sequences",
        sa.Column("recipient_id", sa.Text, primary_key=True),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "inbox_items",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("recipient_id", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=False, server_default=""),
        sa.Column("event_id", sa.Text, nullable=False),
        _now(),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("recipient_id", "sequence", name="inbox_items_recipient_sequence"),
        sa.UniqueConstraint("event_id", "recipient_id", name="inbox_items_event_recipient"),
    )
    op.create_index("inbox_items_unread", "inbox_items", ["recipient_id"], postgresql_where=sa.text("read_at IS NULL"))
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("channels", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("quiet_start", sa.Text),
        sa.Column("quiet_end", sa.Text),
        sa.Column("time_zone", sa.Text, nullable=False, server_default="Asia/Shanghai"),
        sa.Column("daily_digest", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("digest_hour", sa.Integer, nullable=False, server_default="8"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", postgresql.JSONB, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        _now(),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("digest", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        _now(),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("event_id", "recipient", "channel", name="deliveries_event_recipient_channel"),
    )
    op.create_index("deliveries_due", "deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("deliveries_created_id", "deliveries", ["created_at", "id"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("delivery_id", sa.Uuid, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("duration_ms", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("delivery_attempts_delivery", "delivery_attempts", ["delivery_id", "attempt"])
    op.bulk_insert(rules, [
        {"id": default_rule_id(subject), "name": name, "event_subject": subject, "kind": kind,
         "recipients": list(recipients), "robots": [], "enabled": True, "version": 1, "updated_by": "system"}
        for name, subject, kind, recipients in DEFAULT_RULES])
    outbox_schema.create_tables()


def downgrade() -> None:
    outbox_schema.drop_tables()
    for table in TABLES:
        op.drop_table(table)
