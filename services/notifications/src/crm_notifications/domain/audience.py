"""Who may be told what an event says (R-SEC-02, R-SEC-04; issue 12, item 5).

A notification repeats a record, so it reaches only someone who could read that record through
the API, whichever rule routes it:

- the permission: each event needs its producer's read permission (`customers.read` for
  crm.customers.*, `leads.read` for leads, `billing.read` for crm.billing.*, …);
- the data scope: the event's scope subject (the owner, team(s) and department path it carries,
  on the record, in its `customer_scope` (contact and follow-up events: the customer's) or at its
  top level) must be in the reader's scope, as `crmkit.scopes` decides for queries. People the
  event itself names (a rule's `field:` recipients: the approver, the owner, the previous owner)
  are parties to it and need only the permission. An event that carries no scope subject (one
  written before contact events carried their customer's scope) reaches only readers of every
  record (data scope `all`), since nothing proves the record is in anyone else's scope;
- sensitive values (phones, e-mail addresses, WeChat ids, tax IDs, bank account numbers) are
  masked for a reader without `sees_sensitive`, as the API masks them.

Robots and webhooks speak for their owner (who saved the rule or created the webhook): they carry
an event only when the owner may read it, masked for the owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmkit.auth import DataScope, Principal
from crmkit.crypto import mask
from crmkit.scopes import in_scope

# The read permission of each producer's records; some entities are guarded by their own.
_PRODUCER_PERMISSION = {"customers": "customers.read", "opportunities": "opportunities.read",
                        "contracts": "contracts.read", "orders": "orders.read", "billing": "billing.read",
                        "sap": "integrations.read", "identity": "org.read", "notifications": "notifications.manage"}
_ENTITY_PERMISSION = {("customers", "lead"): "leads.read", ("customers", "assignment_rule"): "leads.read"}
# Records of these producers exist only for customers with a signed contract: finance (data
# scope `signed`) reads them.
_SIGNED_PRODUCERS = frozenset({"contracts", "orders", "billing"})
# Where a record, or whose record it is, sits inside an event, most current first (an update
# carries before and after).
_RECORD_KEYS = ("after", "surviving", "customer", "contract", "order", "invoice", "statement", "payment", "lead",
                "opportunity", "quote", "customer_scope")
_SENSITIVE = frozenset({"phones", "phone", "email", "wechat", "tax_id", "account_number"})


def read_permission(subject: str) -> str:
    """The permission that reads what an event with this subject is about."""
    _, producer, entity, *_ = [*subject.split("."), "", "", ""]
    return _ENTITY_PERMISSION.get((producer, entity)) or _PRODUCER_PERMISSION.get(producer) or f"{producer}.read"


def producer_permissions(pattern: str) -> set[str]:
    """The read permissions a webhook's event type (a subject, or a prefix `crm.billing.>` / `crm.>`)
    reaches: a subscriber must hold them all."""
    if pattern in ("crm.>", "crm"):
        return set(_PRODUCER_PERMISSION.values()) | set(_ENTITY_PERMISSION.values())
    parts = pattern.removesuffix(".>").split(".")
    if len(parts) == 2:  # a whole producer: its entities' own permissions too
        producer = parts[1]
        return {read_permission(f"crm.{producer}.x.x")} | {p for (o, _), p in _ENTITY_PERMISSION.items()
                                                             if o == producer}
    return {read_permission(".".join(parts) + ".x")}


@dataclass(frozen=True)
class ScopeSubject:
    """Whose record an event is about."""

    owner_id: str
    team_ids: tuple[str, ...]
    department_path: str
    signed: bool


def scope_subject(subject: str, data: dict[str, Any]) -> ScopeSubject | None:
    """The owner, team(s) and department the event carries (on its record or at its top level);
    None when it carries none."""
    producer = subject.split(".")[1] if subject.count(".") >= 1 else ""
    holders = [data[k] for k in _RECORD_KEYS if isinstance(data.get(k), dict)] + [data]
    for holder in holders:
        owner, department = str(holder.get("owner_id") or ""), str(holder.get("department_path") or "")
        teams = holder.get("team_ids") or ([holder["team_id"]] if holder.get("team_id") else [])
        if owner or department or teams:
            signed = producer in _SIGNED_PRODUCERS or bool(holder.get("has_signed_contract"))
            return ScopeSubject(owner, tuple(str(t) for t in teams if t), department, signed)
    return None


def may_read(reader: Principal | None, subject: str, data: dict[str, Any], *, named: bool = False) -> bool:
    """Whether `reader` could read the record the event is about; `named`: the event names them."""
    if reader is None or not reader.may(read_permission(subject)):
        return False
    if named:
        return True
    record = scope_subject(subject, data)
    if record is None:
        return reader.data_scope == DataScope.ALL
    return in_scope(reader, owner_id=record.owner_id, team_ids=record.team_ids,
                    department_path=record.department_path, signed=record.signed)


def as_seen_by(reader: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """The event's fields as this reader may see them: sensitive values masked without `sees_sensitive`."""
    return data if reader.sees_sensitive else _masked(data)


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if key in _SENSITIVE and isinstance(value, str) and value:
        return _mask_text(value)
    return value


def _mask_text(text: str) -> str:
    if "@" in text:  # an e-mail address: the first letter of the mailbox and the domain stay
        mailbox, _, domain = text.partition("@")
        return f"{mailbox[:1]}{'*' * (len(mailbox) - 1)}@{domain}"
    return mask(text)
