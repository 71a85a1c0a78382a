"""Org chart, users, roles (built-in ones seeded), tokens, partner clients, API keys, the
append-only audit trail; the outbox and processed-event log.

The schema is a frozen copy of adapters/tables.py as of this revision, so later changes to the
tables module never rewrite history.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""



from alembic import op
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from crmkit.outbox import schema as outbox_schema

# The built-in roles as this revision created them (later revisions change them, never this list).
BUILT_IN_ROLES_0001 = (
    ("admin", "System administrator: everything", ["*"], "all", True),
    ("general_manager", "General manager: sees and approves everything, manages no system settings",
     ["customers.read", "customers.write", "opportunities.read", "opportunities.write", "contracts.read",
      "contracts.write", "orders.read", "orders.write", "customers.delete", "customers.export",
      "contracts.approve", "billing.read", "insights.read", "org.read", "audit.read"], "all", True),
    ("sales_director", "Sales director: the sales department subtree",
     ["customers.read", "customers.write", "opportunities.read", "opportunities.write", "contracts.read",
      "contracts.write", "orders.read", "orders.write", "customers.delete", "customers.export",
      "contracts.approve", "billing.read", "insights.read", "org.read"], "department", True),
    ("sales_manager", "Sales manager (team lead): the team's records",
     ["customers.read", "customers.write", "opportunities.read", "opportunities.write", "contracts.read",
      "contracts.write", "orders.read", "orders.write", "contracts.approve", "billing.read", "insights.read",
      "org.read"], "team", True),
    ("sales_rep", "Sales representative: own customers only",
     ["customers.read", "customers.write", "opportunities.read", "opportunities.write", "contracts.read",
      "contracts.write", "orders.read", "orders.write", "org.read"], "own", True),
    ("customer_service", "Customer service: every customer, follow-ups and orders",
     ["customers.read", "customers.write", "contracts.read", "orders.read", "org.read"], "all", True),
    ("finance", "Finance: customers with a signed contract, billing",
     ["customers.read", "contracts.read", "orders.read", "billing.read", "billing.write", "insights.read",
      "org.read"], "signed", True),
    ("marketing", "Marketing: leads and campaigns, no sensitive fields",
     ["customers.read", "insights.read", "org.read"], "all", False),
    ("auditor", "Auditor: read-only, everything, and the audit trail",
     ["customers.read", "opportunities.read", "contracts.read", "orders.read", "billing.read", "insights.read",
      "org.read", "audit.read"], "all", False),
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

metadata = MetaData()

departments = Table(
    "departments", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("parent_id", Uuid, ForeignKey("departments.id")),
    Column("path", Text, nullable=False, unique=True),
    Column("head_user_id", Uuid),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("departments_path_pattern", "path", postgresql_ops={"path": "text_pattern_ops"}),
)

teams = Table(
    "teams", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("department_id", Uuid, ForeignKey("departments.id"), nullable=False, index=True),
    Column("lead_user_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

users = Table(
    "users", metadata,
    Column("id", Uuid, primary_key=True),
    Column("login", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=False),
    Column("email", Text, nullable=False, server_default=""),
    Column("department_id", Uuid, ForeignKey("departments.id"), index=True),
    Column("manager_id", Uuid, ForeignKey("users.id"), index=True),
    Column("status", Text, nullable=False, server_default="active"),
    Column("locale", Text, nullable=False, server_default="zh-CN"),
    Column("password_hash", Text, nullable=False),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

user_teams = Table(
    "user_teams", metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False, index=True),
    PrimaryKeyConstraint("user_id", "team_id"),
)

roles = Table(
    "roles", metadata,
    Column("name", Text, primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("permissions", ARRAY(Text), nullable=False, server_default="{}"),
    Column("data_scope", Text, nullable=False),
    Column("sees_sensitive", Boolean, nullable=False, server_default="false"),
    Column("built_in", Boolean, nullable=False, server_default="false"),
)

user_roles = Table(
    "user_roles", metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, ForeignKey("roles.name"), nullable=False, index=True),
    PrimaryKeyConstraint("user_id", "role"),
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("id", Uuid, primary_key=True),
    # Every token of one sign-in shares the family; reuse of a rotated one revokes the family.
    Column("family_id", Uuid, nullable=False, index=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    # The access token issued with it, so revoking the family revokes those too.
    Column("access_token_id", Text, nullable=False),
    Column("access_expires_at", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

revoked_tokens = Table(
    "revoked_tokens", metadata,
    Column("token_id", Text, primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

partner_clients = Table(
    "partner_clients", metadata,
    Column("client_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False, server_default="{}"),
    Column("rate_limit_per_minute", Integer, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Uuid, primary_key=True),
    Column("client_id", Text, ForeignKey("partner_clients.client_id"), nullable=False, index=True),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

audit_entries = Table(
    "audit_entries", metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("service", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("entity_id", Text, nullable=False, server_default=""),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False, server_default=""),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("event_id", Text, nullable=False, unique=True),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Index("audit_entity", "entity", "entity_id", "sequence"),
    Index("audit_actor", "actor", "sequence"),
    Index("audit_occurred", "occurred_at"),
)

# Append-only: PostgreSQL refuses to change or remove an audit entry.
AUDIT_GUARD_SQL = [
    """CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
           USING ERRCODE = 'insufficient_privilege';
       END $$""",
    """CREATE TRIGGER audit_entries_no_update_delete BEFORE UPDATE OR DELETE ON audit_entries
       FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()""",
    """CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
       FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()""",
]



def upgrade() -> None:
    metadata.create_all(op.get_bind())
    for statement in AUDIT_GUARD_SQL:
        op.execute(statement)
    op.bulk_insert(roles, [
        {"name": name, "description": description, "permissions": permissions, "data_scope": scope,
         "sees_sensitive": sensitive, "built_in": True}
        for name, description, permissions, scope, sensitive in BUILT_IN_ROLES_0001])
    outbox_schema.create_tables()


def downgrade() -> None:
    outbox_schema.drop_tables()
    op.execute("DROP TABLE audit_entries")
    op.execute("DROP FUNCTION audit_entries_append_only()")
    metadata.drop_all(op.get_bind())
