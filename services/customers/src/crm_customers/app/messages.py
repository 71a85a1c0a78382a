"""Domain objects ⇄ the protobuf messages of proto/crm/customers/v1 (API and events)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import lifecycle_pb2, money_pb2
from crm.customers.v1 import customers_pb2 as pb
from crm.customers.v1 import events_pb2 as ev
from crm_customers.domain.masking import masked_contact, masked_customer
from crm_customers.domain.model import (
    Address,
    AddressKind,
    BankAccount,
    Contact,
    Customer,
    CustomerStatus,
    FollowUp,
    FollowUpKind,
    LifecycleStage,
    Origin,
)
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id


def customer_scope(c: Customer) -> ev.CustomerScope:
    """Whose customer a contact or follow-up event is about, so its consumers can tell who may read it."""
    return ev.CustomerScope(owner_id=c.owner_id, team_id=c.team_id or "", department_path=c.department_path,
                            has_signed_contract=c.has_signed_contract)


def _enum_out(prefix: str, value: str) -> str:
    return f"{prefix}_{value.upper()}"


def _enum_in(enum_cls: type, prefix: str, name: str, field: str, default: object) -> object:
    if name.endswith("_UNSPECIFIED"):
        return default
    try:
        return enum_cls(name.removeprefix(prefix + "_").lower())
    except ValueError:
        raise InvalidArgument.of(field, f"unknown value {name!r}") from None


def _name(enum_type: Any, number: int) -> str:
    """The value's name, or its number when this build does not know it (open proto3 enums), which
    `_enum_in` then rejects as a client error rather than failing the call."""
    try:
        return str(enum_type.Name(number))
    except ValueError:
        return str(number)


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def customer_to_pb(c: Customer, *, reveal: bool = False) -> pb.Customer:
    """`reveal`: tax ID and account numbers in full (R-SEC-04); masked otherwise, always in events."""
    if not reveal:
        c = masked_customer(c)
    return pb.Customer(
        id=str(c.id), name=c.name, tax_id=c.tax_id, industry=c.industry, region=c.region,
        origin=pb.Origin.Value(_enum_out("ORIGIN", c.origin)),
        status=pb.CustomerStatus.Value(_enum_out("CUSTOMER_STATUS", c.status)),
        lifecycle_stage=lifecycle_pb2.LifecycleStage.Value(_enum_out("LIFECYCLE_STAGE", c.lifecycle_stage)),
        owner_id=c.owner_id, team_id=c.team_id, department_path=c.department_path, tags=list(c.tags),
        addresses=[pb.Address(kind=pb.AddressKind.Value(_enum_out("ADDRESS_KIND", a.kind)), line=a.line,
                              city=a.city, province=a.province, country=a.country, postal_code=a.postal_code)
                   for a in c.addresses],
        bank_accounts=[pb.BankAccount(bank_name=b.bank_name, account_name=b.account_name,
                                      account_number=b.account_number) for b in c.bank_accounts],
        has_signed_contract=c.has_signed_contract, tier=c.tier,
        signed_amount=(money_pb2.Money(amount=c.signed_amount, currency=c.signed_currency)
                       if c.signed_currency else None),
        version=c.version, create_time=timestamp(c.created_at), update_time=timestamp(c.updated_at),
        created_by=c.created_by)


def customer_fields_from_pb(m: pb.Customer) -> dict[str, object]:
    """The client-settable fields of a Customer message, as domain values."""
    return {
        "name": m.name, "tax_id": m.tax_id, "industry": m.industry, "region": m.region,
        "origin": _enum_in(Origin, "ORIGIN", _name(pb.Origin, m.origin), "origin", Origin.DOMESTIC),
        "status": _enum_in(CustomerStatus, "CUSTOMER_STATUS", _name(pb.CustomerStatus, m.status), "status",
                           CustomerStatus.ACTIVE),
        "lifecycle_stage": _enum_in(LifecycleStage, "LIFECYCLE_STAGE",
                                    _name(lifecycle_pb2.LifecycleStage, m.lifecycle_stage), "lifecycle_stage",
                                    LifecycleStage.PROSPECT),
        "owner_id": m.owner_id, "team_id": m.team_id, "tags": tuple(m.tags),
        "addresses": tuple(
            Address(kind=_enum_in(AddressKind, "ADDRESS_KIND", _name(pb.AddressKind, a.kind),  # type: ignore[arg-type]
                                  f"addresses[{i}].kind", AddressKind.OFFICE),
                    line=a.line, city=a.city, province=a.province, country=a.country, postal_code=a.postal_code)
            for i, a in enumerate(m.addresses)),
        "bank_accounts": tuple(BankAccount(bank_name=b.bank_name, account_name=b.account_name,
                                           account_number=b.account_number) for b in m.bank_accounts),
    }


def contact_to_pb(c: Contact, *, reveal: bool = False) -> pb.Contact:
    """`reveal`: phones in full (R-SEC-04); masked otherwise, always in events."""
    if not reveal:
        c = masked_contact(c)
    return pb.Contact(id=str(c.id), customer_id=str(c.customer_id), name=c.name, title=c.title,
                      phones=list(c.phones), email=c.email, wechat=c.wechat, is_key=c.is_key, version=c.version,
                      create_time=timestamp(c.created_at), update_time=timestamp(c.updated_at))


def contact_fields_from_pb(m: pb.Contact) -> dict[str, object]:
    return {"name": m.name, "title": m.title, "phones": tuple(m.phones), "email": m.email, "wechat": m.wechat,
            "is_key": m.is_key}


def follow_up_to_pb(f: FollowUp) -> pb.FollowUp:
    return pb.FollowUp(
        id=str(f.id), customer_id=str(f.customer_id),
        kind=pb.FollowUpKind.Value(_enum_out("FOLLOW_UP_KIND", f.kind)), occur_time=timestamp(f.occurred_at),
        summary=f.summary, content=f.content, key_facts=list(f.key_facts),
        contact_id=str(f.contact_id) if f.contact_id else "", author_id=f.author_id, author_name=f.author_name,
        create_time=timestamp(f.created_at))


def follow_up_fields_from_pb(m: pb.FollowUp, now: dt.datetime) -> dict[str, object]:
    if m.kind == pb.FOLLOW_UP_KIND_UNSPECIFIED:
        raise InvalidArgument.of("kind", "is required: call, visit, email, wechat, meeting or other")
    contact_id: uuid.UUID | None = parse_id(m.contact_id, "contact_id") if m.contact_id else None
    occurred_at = now
    if m.HasField("occur_time"):
        try:
            occurred_at = m.occur_time.ToDatetime(dt.UTC)
        except ValueError:  # outside years 1-9999
            # The domain's name for the field, so both of its violations carry the same path.
            raise InvalidArgument.of("occurred_at", "is not a valid timestamp") from None
    return {
        "kind": _enum_in(FollowUpKind, "FOLLOW_UP_KIND", _name(pb.FollowUpKind, m.kind), "kind", FollowUpKind.OTHER),
        # R-UX-01: a follow-up typed in right after a call defaults to now.
        "occurred_at": occurred_at,
        "summary": m.summary, "content": m.content, "key_facts": tuple(m.key_facts), "contact_id": contact_id,
    }
