"""Leads and assignment rules ⇄ the protobuf messages of proto/crm/customers/v1."""

from __future__ import annotations

from crm.common.v1 import lifecycle_pb2, money_pb2
from crm.customers.v1 import customers_pb2 as pb
from crm_customers.app.messages import timestamp
from crm_customers.domain.assignment import Rule
from crm_customers.domain.leads import Lead, LeadStatus
from crm_customers.domain.masking import mask_phone
from crmkit.errors import InvalidArgument

_STATUS_PREFIX = "LEAD_STATUS_"


def status_to_pb(status: LeadStatus) -> int:
    return int(pb.LeadStatus.Value(_STATUS_PREFIX + status.value.upper()))


def status_from_pb(value: int) -> LeadStatus:
    try:
        name = pb.LeadStatus.Name(value)
    except ValueError:
        name = ""
    if not name or name.endswith("UNSPECIFIED"):
        raise InvalidArgument.of("status", "is required: new, working, qualified or unqualified")
    return LeadStatus(name.removeprefix(_STATUS_PREFIX).lower())


def lead_to_pb(lead: Lead, *, reveal: bool = False) -> pb.Lead:
    """`reveal`: the phone in full (R-SEC-04); masked otherwise, and always in events."""
    return pb.Lead(
        id=str(lead.id), name=lead.name, phone=lead.phone if reveal or not lead.phone else mask_phone(lead.phone),
        email=lead.email, company=lead.company, title=lead.title, region=lead.region, industry=lead.industry,
        source=lead.source, campaign=lead.campaign, channel=lead.channel, status=status_to_pb(lead.status),
        owner_id=lead.owner_id, team_id=lead.team_id, department_path=lead.department_path,
        assignment_rule_id=str(lead.assignment_rule_id) if lead.assignment_rule_id else "",
        unassigned_reason=lead.unassigned_reason,
        customer_id=str(lead.customer_id) if lead.customer_id else "",
        contact_id=str(lead.contact_id) if lead.contact_id else "",
        opportunity_id=str(lead.opportunity_id) if lead.opportunity_id else "",
        convert_time=timestamp(lead.converted_at), version=lead.version, create_time=timestamp(lead.created_at),
        update_time=timestamp(lead.updated_at), created_by=lead.created_by,
        lifecycle_stage=lifecycle_pb2.LifecycleStage.Value("LIFECYCLE_STAGE_" + lead.lifecycle_stage.value.upper()))


def lead_fields_from_pb(m: pb.Lead) -> dict[str, object]:
    return {"name": m.name, "phone": m.phone, "email": m.email, "company": m.company, "title": m.title,
            "region": m.region, "industry": m.industry, "source": m.source, "campaign": m.campaign,
            "channel": m.channel, "owner_id": m.owner_id, "team_id": m.team_id}


def rule_to_pb(rule: Rule) -> pb.AssignmentRule:
    return pb.AssignmentRule(id=str(rule.id), name=rule.name, priority=rule.priority, regions=list(rule.regions),
                             industries=list(rule.industries), user_ids=list(rule.user_ids), team_id=rule.team_id,
                             department_path=rule.department_path, cap_count=rule.cap_count,
                             cap_days=rule.cap_days, active=rule.active, version=rule.version)


def rule_fields_from_pb(m: pb.AssignmentRule) -> dict[str, object]:
    return {"name": m.name, "priority": m.priority, "regions": tuple(m.regions), "industries": tuple(m.industries),
            "user_ids": tuple(m.user_ids), "team_id": m.team_id, "department_path": m.department_path or "/",
            "cap_count": m.cap_count, "cap_days": m.cap_days or 7, "active": m.active}


def money(amount: object, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=f"{amount:.2f}" if amount is not None else "0.00", currency=currency)
