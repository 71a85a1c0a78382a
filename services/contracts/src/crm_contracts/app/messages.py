"""Domain objects ⇄ the protobuf messages of proto/crm/contracts/v1 (API and events)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.contracts.v1 import contracts_pb2 as pb
from crm.contracts.v1 import events_pb2 as ev
from crm_contracts.domain import approvals as ap
from crm_contracts.domain.model import Contract, Instalment, Line


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value.astimezone(dt.UTC))
    return out


def money(amount: Decimal, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=f"{amount:.2f}", currency=currency)


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


def _id(value: Any) -> str:
    return str(value) if value else ""


def line_to_pb(li: Line, currency: str) -> ev.ContractLine:
    return ev.ContractLine(
        line_id=li.line_id, product=li.product, specification=li.specification, quantity=str(li.quantity),
        unit=li.unit, unit_price=money_pb2.Money(amount=str(li.unit_price), currency=currency),
        amount=money(li.amount, currency), tax_rate=str((li.tax_rate_percent / 100).normalize()),
        discount_percent=str(li.discount_percent), product_line=li.product_line,
        tax_amount=money(li.tax_amount, currency))


def instalment_to_pb(i: Instalment, currency: str) -> ev.Instalment:
    return ev.Instalment(instalment_id=i.instalment_id, sequence=i.sequence, due_date=i.due_date.isoformat(),
                         amount=money(i.amount, currency), label=i.label)


def contract_to_pb(c: Contract) -> pb.Contract:
    t = c.totals
    return pb.Contract(
        id=str(c.id), contract_number=c.number, version=c.version,
        status=pb.ContractStatus.Value(f"CONTRACT_STATUS_{c.status.value.upper()}"), title=c.title,
        customer_id=str(c.customer_id), customer_name=c.customer_name, customer_type=c.customer_type,
        opportunity_id=_id(c.opportunity_id), quote_id=_id(c.quote_id), predecessor_id=_id(c.predecessor_id),
        successor_id=_id(c.successor_id), currency=c.currency, lines=[line_to_pb(li, c.currency) for li in c.lines],
        net_total=money(t.net, c.currency), tax_total=money(t.tax, c.currency), amount=money(t.gross, c.currency),
        start_date=_date(c.start_date), end_date=_date(c.end_date), sign_date=_date(c.sign_date),
        renewal_date=_date(c.renewal_date), instalments=[instalment_to_pb(i, c.currency) for i in c.instalments],
        owner_id=c.owner_id, team_id=c.team_id, department_path=c.department_path, created_by=c.created_by,
        create_time=ts(c.created_at), update_time=ts(c.updated_at), termination_reason=c.termination_reason,
        approval_rule_id=_id(c.approval_rule_id), approval_attempt=c.approval_attempt, revision=c.revision,
        signed_by=c.signed_by)


def snapshot(c: Contract) -> dict[str, Any]:
    """A version as it was, kept as the API's JSON form of the contract message."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(contract_to_pb(c), preserving_proto_field_name=True)


def snapshot_to_pb(data: dict[str, Any]) -> pb.Contract:
    from google.protobuf.json_format import ParseDict

    return ParseDict(data, pb.Contract(), ignore_unknown_fields=True)


def step_to_pb(s: ap.Step, c: Contract | None = None) -> pb.ApprovalStep:
    out = pb.ApprovalStep(
        id=str(s.id), contract_id=str(s.contract_id), attempt=s.attempt, position=s.position, name=s.name,
        state=s.state.value, approver_ids=list(s.approver_ids), mode=s.mode.value, approved_by=list(s.approved_by),
        decided_by=s.decided_by, acting_for=s.acting_for, reason=s.reason, reach_time=ts(s.reached_at),
        due_time=ts(s.due_at), decide_time=ts(s.decided_at), fallback=s.fallback)
    if c is not None:
        out.contract_number = c.number
        out.amount.CopyFrom(money(c.amount, c.currency))
        out.customer_id = str(c.customer_id)
        out.submitter_id = c.submitted_by
    return out


def rule_to_pb(r: ap.Rule) -> pb.ApprovalRule:
    return pb.ApprovalRule(id=str(r.id), name=r.name, priority=r.priority, active=r.active,
                           definition_json=json.dumps(r.definition(), ensure_ascii=False, sort_keys=True),
                           revision=r.revision)


def delegation_to_pb(d: ap.Delegation) -> pb.Delegation:
    return pb.Delegation(id=str(d.id), delegator_id=d.delegator_id, delegate_id=d.delegate_id,
                         start_date=d.start_date.isoformat(), end_date=d.end_date.isoformat(), revoked=d.revoked)


def signed_event(c: Contract) -> ev.ContractSigned:
    sign_time = dt.datetime.combine(c.sign_date or dt.date.today(), dt.time(), dt.UTC)
    team_ids = [c.team_id] if c.team_id else []
    return ev.ContractSigned(
        contract_id=str(c.id), contract_number=c.number, customer_id=str(c.customer_id),
        amount=money(c.amount, c.currency), sign_time=ts(sign_time), owner_id=c.owner_id,
        opportunity_id=_id(c.opportunity_id), quote_id=_id(c.quote_id),
        lines=[line_to_pb(li, c.currency) for li in c.lines],
        instalments=[instalment_to_pb(i, c.currency) for i in c.instalments], start_date=_date(c.start_date),
        end_date=_date(c.end_date), customer_name=c.customer_name, department_path=c.department_path,
        team_ids=team_ids, signed_by=c.signed_by)
