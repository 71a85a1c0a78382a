"""The rules a fresh installation starts with (R-NOT-01); administrators edit them as data."""

from __future__ import annotations

import uuid

# Fixed ids so the migration that seeds them is repeatable and tests can name them.
_NS = uuid.UUID("6f0f5d3e-3c61-4f3f-9a52-6b1d2c0e7a10")

# name, event subject, kind, recipients
DEFAULT_RULES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("Approval waiting: the step's approvers", "crm.contracts.approval.step_assigned", "approval.waiting",
     ("field:approver_ids",)),
    ("Approval overdue: the step's approvers", "crm.contracts.approval.step_overdue", "approval.overdue",
     ("field:approver_ids",)),
    ("Approval decided: the submitter", "crm.contracts.approval.decided", "approval.decided",
     ("field:submitter_id",)),
    ("Contract expiring: the owner", "crm.contracts.contract.expiring", "contract.expiring", ("field:owner_id",)),
    ("Payment overdue: the owner and their manager", "crm.billing.invoice.overdue", "payment.overdue",
     ("field:owner_id", "manager_of:owner_id")),
    ("Statement disputed: finance", "crm.billing.statement.disputed", "statement.disputed", ("role:finance",)),
    ("SAP sync failed: operators", "crm.sap.sync.failed", "sync.failed", ("role:operator",)),
    ("Customer reassigned: the old and the new owner", "crm.customers.customer.reassigned", "customer.reassigned",
     ("field:previous_owner_id", "field:owner_id")),
)


def default_rule_id(event_subject: str) -> uuid.UUID:
    return uuid.uuid5(_NS, event_subject)
