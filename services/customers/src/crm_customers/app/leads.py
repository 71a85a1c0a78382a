"""Lead commands and queries (R-LEAD-01): creation with fair rule-based assignment, status,
hand assignment, conversion into customer + contact, assignment rules, channel attribution."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm.customers.v1 import customers_pb2 as pb
from crm.customers.v1 import events_pb2 as ev
from crm.opportunities.v1 import events_pb2 as opportunities_ev
from crm_customers.adapters.leads_repository import LeadRepository
from crm_customers.adapters.repository import CustomerRepository, in_scope
from crm_customers.adapters.tables import customers
from crm_customers.app.lead_messages import lead_to_pb, money, rule_to_pb
from crm_customers.app.messages import contact_to_pb, customer_scope, customer_to_pb
from crm_customers.app.use_cases import _check_references, _check_version, _reject_duplicate
from crm_customers.domain import assignment, leads
from crm_customers.domain.leads import Lead, LeadStatus
from crm_customers.domain.model import (
    Contact,
    Customer,
    LifecycleStage,
    normalise_contact,
    normalise_customer,
)
from crm_customers.domain.text import clean
from crmkit.auth import Principal
from crmkit.auth.principal import SYSTEM
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, Conflict, FieldViolation, InvalidArgument, NotFound, PermissionDenied
from crmkit.events.envelope import Event
from crmkit.ids import new_id
from crmkit.pagination import decode_cursor, encode_cursor, page_size, time_text, uuid_text
from crmkit.scopes import may_assign

log = logging.getLogger(__name__)
LIST_SORT = "-create_time"
OPPORTUNITY_WON_SUBJECT = "crm.opportunities.opportunity.won"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require(principal: Principal, permission: str, what: str) -> None:
    if not principal.may(permission):
        raise PermissionDenied(f"{what} needs the {permission} permission")


async def _lead_in_scope(repo: LeadRepository, principal: Principal, lead_id: uuid.UUID, *,
                         for_update: bool = False) -> Lead:
    lead = await repo.get(principal, lead_id, for_update=for_update)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found", metadata={"lead_id": str(lead_id)})
    return lead


# Creation and assignment -----------------------------------------------------------------------


async def _assign_by_rules(repo: LeadRepository, items: list[Lead]) -> list[Lead]:
    """Gives each lead to the next person of the first matching rule that has someone under the
    cap. The pools are locked for the rest of the transaction (see LeadRepository.lock_pools), so
    concurrent batches take turns and the rotation and the caps see every earlier assignment."""
    if not items:
        return []
    rules = await repo.rules()
    wanted = {r.id for lead in items for r in assignment.matching(rules, region=lead.region, industry=lead.industry)}
    pools = await repo.lock_pools(sorted(wanted, key=str))
    # Match against the rules as locked (an edit may have landed since the first read).
    locked = [p.rule for p in pools.values()]
    out = []
    for lead in items:
        pick = assignment.choose(pools, assignment.matching(locked, region=lead.region, industry=lead.industry))
        if pick.rule is None:
            out.append(replace(lead, owner_id="", team_id="", assignment_rule_id=None,
                               unassigned_reason=pick.reason))
        else:
            out.append(replace(lead, owner_id=pick.owner_id, team_id=pick.rule.team_id,
                               department_path=pick.rule.department_path, assignment_rule_id=pick.rule.id,
                               unassigned_reason=""))
    await repo.save_cursors(pools)
    return out


async def _check_industries(uow: UnitOfWork, items: list[Lead]) -> None:
    repo = CustomerRepository(uow.session)
    for code in sorted({lead.industry for lead in items if lead.industry}):
        if not await repo.industry_exists(code):
            raise InvalidArgument.of("industry", f"unknown industry {code!r}; see GET /api/v1/industries")


async def create_leads(uow: UnitOfWork, principal: Principal, items: list[dict[str, Any]]) -> list[Lead]:
    """R-LEAD-01: one or up to 1,000 leads in one transaction. A lead naming its owner is assigned
    by hand (within the caller's scope); the others go through the assignment rules."""
    if not items:
        raise InvalidArgument.of("leads", "at least one lead")
    if len(items) > leads.MAX_BATCH:
        raise InvalidArgument.of("leads", f"at most {leads.MAX_BATCH} leads at once")
    batch = len(items) > 1
    built: list[Lead] = []
    violations: list[FieldViolation] = []
    for i, fields in enumerate(items):
        owner, team = clean(fields.pop("owner_id", "") or ""), clean(fields.pop("team_id", "") or "")
        try:
            lead = leads.normalise_lead(Lead(id=new_id(), department_path=principal.department_path,
                                             created_by=principal.subject, **fields))
        except InvalidArgument as exc:
            if not batch:
                raise
            violations += [FieldViolation(f"leads[{i}].{v.field}", v.description) for v in exc.violations]
            continue
        if owner:
            team = team or (principal.team_ids[0] if owner == principal.subject and principal.team_ids else "")
            if not may_assign(principal, owner_id=owner, team_id=team, department_path=principal.department_path):
                raise PermissionDenied("you may not assign a lead to this owner or team",
                                       reason="ASSIGNMENT_OUT_OF_SCOPE")
            lead = replace(lead, owner_id=owner, team_id=team)
        built.append(lead)
    if violations:
        raise InvalidArgument(f"{len(violations)} problem(s) in the batch; nothing was created",
                              violations=violations)
    await _check_industries(uow, built)
    repo = LeadRepository(uow.session)
    by_hand = [lead for lead in built if lead.owner_id]
    by_rules = iter(await _assign_by_rules(repo, [lead for lead in built if not lead.owner_id]))
    ordered = [lead if lead.owner_id else next(by_rules) for lead in built]
    saved = await repo.add_many(ordered)
    await repo.record_assignments([(lead.id, lead.owner_id, lead.assignment_rule_id)
                                   for lead in saved if lead.owner_id], principal.subject)
    for lead in saved:
        uow.emit(ev.LeadCreated(lead=lead_to_pb(lead)), subject_id=str(lead.id))
    await uow.commit()
    log.info("leads created", extra={"count": len(saved), "by_hand": len(by_hand),
                                     "unassigned": sum(1 for lead in saved if not lead.owner_id)})
    return saved


async def get_lead(uow: UnitOfWork, principal: Principal, lead_id: uuid.UUID) -> Lead:
    return await _lead_in_scope(LeadRepository(uow.session), principal, lead_id)


async def list_leads(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                     **filters: Any) -> tuple[list[Lead], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    items = await LeadRepository(uow.session).list(principal, after=cursor.values if cursor else None,
                                                   limit=size + 1, filters=filters)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    return items[:size], token


async def update_lead_status(uow: UnitOfWork, principal: Principal, lead_id: uuid.UUID, status: LeadStatus,
                             expected_version: int) -> Lead:
    repo = LeadRepository(uow.session)
    before = await _lead_in_scope(repo, principal, lead_id, for_update=True)
    _check_version(expected_version, before.version, "the lead")
    if before.status is status:
        return before
    saved = await repo.save(replace(leads.change_status(before, status), version=before.version + 1))
    uow.emit(ev.LeadStatusChanged(lead=lead_to_pb(saved), previous_status=pb.LeadStatus.Value(
        "LEAD_STATUS_" + before.status.value.upper())), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def assign_lead(uow: UnitOfWork, principal: Principal, lead_id: uuid.UUID, owner_id: str, team_id: str,
                      expected_version: int) -> Lead:
    """By hand (owner named, within the caller's scope; caps are the rules' business, a person may
    override them) or by the rules again (owner empty), e.g. after an unassigned lead's rule
    gets capacity."""
    repo = LeadRepository(uow.session)
    before = await _lead_in_scope(repo, principal, lead_id, for_update=True)
    _check_version(expected_version, before.version, "the lead")
    if before.status is LeadStatus.CONVERTED:
        raise Conflict("the lead is converted; assign its customer instead", reason="LEAD_CONVERTED")
    owner_id, team_id = clean(owner_id), clean(team_id)
    if owner_id:
        if not may_assign(principal, owner_id=owner_id, team_id=team_id, department_path=before.department_path):
            raise PermissionDenied("you may not assign a lead to this owner or team", reason="ASSIGNMENT_OUT_OF_SCOPE")
        after = replace(before, owner_id=owner_id, team_id=team_id, assignment_rule_id=None, unassigned_reason="")
    else:
        [after] = await _assign_by_rules(repo, [before])
    if (after.owner_id, after.team_id) == (before.owner_id, before.team_id) and not after.unassigned_reason:
        return before
    saved = await repo.save(replace(after, version=before.version + 1))
    if saved.owner_id:
        await repo.record_assignments([(saved.id, saved.owner_id, saved.assignment_rule_id)], principal.subject)
    uow.emit(ev.LeadAssigned(lead=lead_to_pb(saved), previous_owner_id=before.owner_id), subject_id=str(saved.id))
    await uow.commit()
    return saved


# Conversion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    lead: Lead
    customer: Customer
    contact: Contact
    customer_created: bool


async def _existing_customer(uow: UnitOfWork, principal: Principal, *, customer_id: uuid.UUID | None, tax_id: str,
                             name: str) -> Customer | None:
    """The customer the lead attaches to: the one named, the holder of the tax ID, or the one
    with exactly this name (case-insensitive) — only within what the caller may see."""
    repo = CustomerRepository(uow.session)
    if customer_id:
        found = await repo.get(principal, customer_id)
        if found is None:
            raise NotFound(f"customer {customer_id} not found", metadata={"customer_id": str(customer_id)})
        return found
    if tax_id:
        holder = await repo.holder_of_tax_id(tax_id)
        if holder is not None:
            found = await repo.get(principal, holder.id)
            if found is None:
                await _reject_duplicate(repo, principal, tax_id)  # raises without naming it (R-SEC-02)
            return found
    # ILIKE without wildcards: a case-insensitive equality the name's trigram index serves.
    literal_name = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    same_name = (await uow.session.execute(
        select(customers.c.id).where(customers.c.name.ilike(literal_name, escape="\\"), in_scope(principal))
        .order_by(customers.c.created_at).limit(1))).scalar()
    return await repo.get(principal, same_name) if same_name else None


async def convert_lead(uow: UnitOfWork, principal: Principal, lead_id: uuid.UUID, *,
                       customer_id: uuid.UUID | None = None, tax_id: str = "", customer_name: str = "") -> Conversion:
    """R-LEAD-01 / R-CUS-11: the lead becomes a customer (a prospect, or the existing customer it
    attaches to) and a contact, in one transaction, and is marked converted. The opportunity is
    the second step (the gateway creates it with the lead id as its key and links it back), so a
    converted lead answers a repeated conversion with what it became: retrying is safe."""
    repo, customer_repo = LeadRepository(uow.session), CustomerRepository(uow.session)
    lead = await _lead_in_scope(repo, principal, lead_id, for_update=True)
    if lead.status is LeadStatus.CONVERTED and lead.customer_id and lead.contact_id:
        customer = await customer_repo.get(principal, lead.customer_id)
        contact = await customer_repo.get_contact(lead.customer_id, lead.contact_id)
        if customer is None or contact is None:
            raise Conflict("the lead was converted into a customer or contact that is gone", reason="LEAD_CONVERTED")
        return Conversion(lead, customer, contact, False)
    leads.check_convertible(lead)
    name = clean(customer_name) or lead.company or lead.name
    tax_id = clean(tax_id).upper()
    customer = await _existing_customer(uow, principal, customer_id=customer_id, tax_id=tax_id, name=name)
    created = customer is None
    if customer is None:
        owner = lead.owner_id or principal.subject
        team = lead.team_id if lead.owner_id else (principal.team_ids[0] if principal.team_ids else "")
        customer = normalise_customer(Customer(
            id=new_id(), name=name, tax_id=tax_id, industry=lead.industry, region=lead.region, owner_id=owner,
            team_id=team, department_path=lead.department_path, lifecycle_stage=LifecycleStage.PROSPECT,
            created_by=principal.subject))
        await _check_references(customer_repo, principal, customer)
        await _reject_duplicate(customer_repo, principal, customer.tax_id)
        customer = await customer_repo.add(customer)
        uow.emit(ev.CustomerCreated(customer=customer_to_pb(customer)), subject_id=str(customer.id))
    elif customer.lifecycle_stage is LifecycleStage.LEAD:
        before = customer
        customer = await customer_repo.save(replace(customer, lifecycle_stage=LifecycleStage.PROSPECT,
                                                    version=customer.version + 1))
        uow.emit(ev.CustomerUpdated(before=customer_to_pb(before), after=customer_to_pb(customer),
                                    changed_fields=["lifecycle_stage"]), subject_id=str(customer.id))
    contact = await customer_repo.add_contact(normalise_contact(Contact(
        id=new_id(), customer_id=customer.id, name=lead.name, title=lead.title,
        phones=(lead.phone,) if lead.phone else (), email=lead.email)))
    uow.emit(ev.ContactAdded(contact=contact_to_pb(contact), customer_scope=customer_scope(customer)),
             subject_id=str(customer.id))
    saved = await repo.save(replace(lead, status=LeadStatus.CONVERTED, customer_id=customer.id, contact_id=contact.id,
                                    converted_at=_now(), version=lead.version + 1))
    uow.emit(ev.LeadConverted(lead=lead_to_pb(saved), customer_created=created), subject_id=str(saved.id))
    await uow.commit()
    return Conversion(saved, customer, contact, created)


async def link_opportunity(uow: UnitOfWork, principal: Principal, lead_id: uuid.UUID,
                           opportunity_id: uuid.UUID) -> Lead:
    repo = LeadRepository(uow.session)
    lead = await _lead_in_scope(repo, principal, lead_id, for_update=True)
    if lead.status is not LeadStatus.CONVERTED:
        raise Conflict("only a converted lead is linked to an opportunity", reason="LEAD_NOT_CONVERTED")
    if lead.opportunity_id == opportunity_id:
        return lead
    if lead.opportunity_id is not None:
        raise AlreadyExists(f"the lead became opportunity {lead.opportunity_id}", reason="LEAD_HAS_OPPORTUNITY",
                            metadata={"opportunity_id": str(lead.opportunity_id)})
    saved = await repo.save(replace(lead, opportunity_id=opportunity_id, version=lead.version + 1))
    uow.emit(ev.LeadConverted(lead=lead_to_pb(saved), customer_created=False), subject_id=str(saved.id))
    await uow.commit()
    return saved


# Assignment rules ------------------------------------------------------------------------------


async def list_rules(uow: UnitOfWork, principal: Principal) -> list[assignment.Rule]:
    _require(principal, "leads.assign", "reading the assignment rules")
    return await LeadRepository(uow.session).rules()


async def create_rule(uow: UnitOfWork, principal: Principal, fields: dict[str, Any]) -> assignment.Rule:
    _require(principal, "leads.assign", "editing the assignment rules")
    rule = assignment.normalise_rule(assignment.Rule(id=new_id(), **fields))
    saved = await LeadRepository(uow.session).add_rule(rule, principal.subject)
    uow.emit(ev.AssignmentRuleChanged(rule=rule_to_pb(saved)), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def update_rule(uow: UnitOfWork, principal: Principal, rule_id: uuid.UUID, fields: dict[str, Any],
                      expected_version: int) -> assignment.Rule:
    _require(principal, "leads.assign", "editing the assignment rules")
    repo = LeadRepository(uow.session)
    before = await repo.rule(rule_id, for_update=True)
    if before is None:
        raise NotFound(f"assignment rule {rule_id} not found")
    _check_version(expected_version, before.version, "the assignment rule")
    rule = assignment.normalise_rule(replace(before, **fields, version=before.version + 1))
    saved = await repo.save_rule(rule)
    uow.emit(ev.AssignmentRuleChanged(rule=rule_to_pb(saved)), subject_id=str(saved.id))
    await uow.commit()
    return saved


# Attribution -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributionRow:
    source: str
    campaign: str
    channel: str
    leads: int
    converted: int
    won: int
    won_amounts: tuple[tuple[Decimal, str], ...]


async def attribution(uow: UnitOfWork, principal: Principal, *, from_date: dt.date | None,
                      to_date: dt.date | None) -> list[AttributionRow]:
    if from_date and to_date and from_date >= to_date:
        raise InvalidArgument.of("to_date", "must be after from_date")

    def start(d: dt.date | None) -> dt.datetime | None:
        return dt.datetime.combine(d, dt.time(), dt.UTC) if d else None

    rows = await LeadRepository(uow.session).attribution(principal, start(from_date), start(to_date))
    grouped: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for row in rows:
        grouped[(row.source, row.campaign, row.channel)].append(row)
    return [AttributionRow(
        source=key[0], campaign=key[1], channel=key[2], leads=sum(int(r.leads) for r in parts),
        converted=sum(int(r.converted) for r in parts), won=sum(int(r.won) for r in parts),
        won_amounts=tuple((Decimal(r.won_amount), r.won_currency) for r in parts if r.won_currency))
        for key, parts in grouped.items()]


def attribution_to_pb(row: AttributionRow) -> pb.AttributionRow:
    return pb.AttributionRow(source=row.source, campaign=row.campaign, channel=row.channel, leads=row.leads,
                             converted=row.converted, won=row.won,
                             won_amounts=[money(a, c) for a, c in row.won_amounts])


# Events consumed -------------------------------------------------------------------------------


async def on_opportunity_won(uow: UnitOfWork, event: Event) -> None:
    """`crm.opportunities.opportunity.won`: the won amount of an opportunity converted from a lead
    counts for the lead's source/campaign/channel (attribution). A read model of the event, which
    itself is in the audit trail; an opportunity not from a lead is ignored."""
    won = event.message(opportunities_ev.OpportunityWon).opportunity
    if not won.lead_id:
        return
    try:
        lead_id = uuid.UUID(won.lead_id)
    except ValueError:
        log.warning("opportunity won for a malformed lead id; ignored", extra={"event_id": event.id})
        return
    repo = LeadRepository(uow.session)
    lead = await repo.get(SYSTEM, lead_id, for_update=True)
    if lead is None:
        log.warning("opportunity won for an unknown lead; ignored",
                    extra={"event_id": event.id, "lead_id": won.lead_id})
        return
    await repo.save(replace(lead, won_amount=Decimal(won.amount.amount or "0"), won_currency=won.amount.currency,
                            opportunity_id=lead.opportunity_id or uuid.UUID(won.id)))
