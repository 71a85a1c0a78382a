"""What the insights service keeps of other services' events.

- CRM_CONTRACTS: signed contracts (amount, signer and their team and department at signing, the
  receivable plan), amendments (a later version's amount and plan) and terminations.
- CRM_CUSTOMERS: whose each customer is now (created, updated, reassigned, merged): money received
  and owed counts for the customer's current owner.
  Follow-ups: when each customer was last followed up.
- CRM_BILLING: invoices (and credit notes), cancellations, payments, and allocations onto invoices.
- CRM_OPPORTUNITIES: the latest snapshot of each opportunity (stage, amount, probability, status).

Handlers only record facts, keyed by the producer's ids (crmkit's processed-event log drops
redeliveries; the upserts also ignore a replay under a new event id). Figures are joined from the
facts when the dashboard is asked, so a fact arriving before the one it refers to changes nothing.
An event with a malformed id or amount is logged and dropped: retrying it would never succeed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal, InvalidOperation

from crm.billing.v1 import events_pb2 as billing_ev
from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customers_ev
from crm.opportunities.v1 import events_pb2 as opportunities_ev
from crm.opportunities.v1 import opportunities_pb2
from crm_insights.adapters.read_models import (
    CustomerPlace,
    OpportunitySnapshot,
    PlannedInstalment,
    ReadModels,
    SignedContract,
)
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event, subject_of

log = logging.getLogger(__name__)

CONTRACT_SUBJECTS = [subject_of(m) for m in (contracts_ev.ContractSigned, contracts_ev.ContractAmended,
                                             contracts_ev.ContractTerminated)]
CUSTOMER_SUBJECTS = [subject_of(m) for m in (customers_ev.CustomerCreated, customers_ev.CustomerUpdated,
                                             customers_ev.CustomerReassigned, customers_ev.CustomersMerged,
                                             customers_ev.FollowUpRecorded)]
OPPORTUNITY_SUBJECTS = [subject_of(m) for m in (opportunities_ev.OpportunityCreated,
                                                opportunities_ev.OpportunityStageChanged,
                                                opportunities_ev.OpportunityWon, opportunities_ev.OpportunityLost)]
BILLING_SUBJECTS = [subject_of(m) for m in (billing_ev.InvoiceIssued, billing_ev.InvoiceCancelled,
                                            billing_ev.PaymentReceived, billing_ev.PaymentAllocated)]


class Malformed(ValueError):
    """An event this service cannot read; dropped with a warning."""


def _id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise Malformed(f"{what} {value!r} is not an id") from None


def _optional_id(value: str, what: str) -> uuid.UUID | None:
    return _id(value, what) if value else None


def _amount(money: money_pb2.Money, what: str) -> Decimal:
    try:
        return Decimal(money.amount or "0").quantize(Decimal("0.01"))
    except InvalidOperation:
        raise Malformed(f"{what} {money.amount!r} is not an amount") from None


def _date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (ValueError, TypeError):
        raise Malformed(f"{what} {value!r} is not a date") from None


def _optional_date(value: str, what: str) -> dt.date | None:
    return _date(value, what) if value else None


def _plan(items: list[contracts_ev.Instalment], currency: str) -> list[PlannedInstalment]:
    return [PlannedInstalment(id=_id(i.instalment_id, "instalment"), due_date=_date(i.due_date, "due date"),
                              currency=i.amount.currency or currency, amount=_amount(i.amount, "instalment amount"))
            for i in items]


async def on_contract_event(uow: UnitOfWork, event: Event) -> None:
    await _guarded(uow, event, _contract_event)


async def on_customer_event(uow: UnitOfWork, event: Event) -> None:
    await _guarded(uow, event, _customer_event)


async def on_billing_event(uow: UnitOfWork, event: Event) -> None:
    await _guarded(uow, event, _billing_event)


async def on_opportunity_event(uow: UnitOfWork, event: Event) -> None:
    await _guarded(uow, event, _opportunity_event)


async def _guarded(uow: UnitOfWork, event: Event, handle: object) -> None:
    try:
        await handle(ReadModels(uow.session), event)  # type: ignore[operator]
    except Malformed as exc:
        log.warning("event dropped: %s", exc, extra={"event_id": event.id, "event_type": event.type})


async def _contract_event(models: ReadModels, event: Event) -> None:
    match event.type:
        case contracts_ev.ContractSigned.DESCRIPTOR.full_name:
            signed = event.message(contracts_ev.ContractSigned)
            signed_at = signed.sign_time.ToDatetime(dt.UTC) if signed.HasField("sign_time") else \
                dt.datetime.fromisoformat(event.headers.get("ce-time", dt.datetime.now(dt.UTC).isoformat()))
            currency = signed.amount.currency
            await models.contract_signed(SignedContract(
                id=_id(signed.contract_id, "contract"), customer_id=_id(signed.customer_id, "customer"),
                currency=currency, amount=_amount(signed.amount, "contract amount"), signed_at=signed_at,
                # the credit stays with who signed (signed_by; older events name the owner)
                signed_by=signed.signed_by or signed.owner_id,
                team_id=signed.team_ids[0] if signed.team_ids else "",
                department_path=signed.department_path or "/",
                end_date=_optional_date(signed.end_date, "end date"),
            # contracts stamps the signing day at midnight UTC: its UTC date is the day signed
            ), _plan(list(signed.instalments), currency), signed_on=signed_at.astimezone(dt.UTC).date())
        case contracts_ev.ContractAmended.DESCRIPTOR.full_name:
            amended = event.message(contracts_ev.ContractAmended)
            await models.contract_amended(_id(amended.contract_id, "contract"), amended.version,
                                          _amount(amended.amount, "contract amount"),
                                          _plan(list(amended.instalments), amended.amount.currency))
        case contracts_ev.ContractTerminated.DESCRIPTOR.full_name:
            terminated = event.message(contracts_ev.ContractTerminated)
            await models.contract_terminated(_id(terminated.contract_id, "contract"))


def _place(customer: customers_pb2.Customer) -> CustomerPlace:
    return CustomerPlace(id=_id(customer.id, "customer"), owner_id=customer.owner_id, team_id=customer.team_id,
                         department_path=customer.department_path or "/", version=customer.version,
                         name=customer.name)


async def _customer_event(models: ReadModels, event: Event) -> None:
    match event.type:
        case customers_ev.CustomerCreated.DESCRIPTOR.full_name:
            await models.customer_placed(_place(event.message(customers_ev.CustomerCreated).customer))
        case customers_ev.CustomerUpdated.DESCRIPTOR.full_name:
            await models.customer_placed(_place(event.message(customers_ev.CustomerUpdated).after))
        case customers_ev.CustomerReassigned.DESCRIPTOR.full_name:
            await models.customer_placed(_place(event.message(customers_ev.CustomerReassigned).customer))
        case customers_ev.CustomersMerged.DESCRIPTOR.full_name:
            merged = event.message(customers_ev.CustomersMerged)
            # the merged customer's money and opportunities are the survivor's now
            await models.customer_merged(_id(merged.merged_id, "merged customer"), _place(merged.surviving),
                                         merged.merged.version)
        case customers_ev.FollowUpRecorded.DESCRIPTOR.full_name:
            follow_up = event.message(customers_ev.FollowUpRecorded).follow_up
            await models.follow_up_recorded(
                _id(follow_up.id, "follow-up"), _id(follow_up.customer_id, "customer"),
                follow_up.occur_time.ToDatetime(dt.UTC) if follow_up.HasField("occur_time")
                else follow_up.create_time.ToDatetime(dt.UTC), follow_up.author_id)


async def _billing_event(models: ReadModels, event: Event) -> None:
    match event.type:
        case billing_ev.InvoiceIssued.DESCRIPTOR.full_name:
            issued = event.message(billing_ev.InvoiceIssued)
            await models.invoice_issued(
                invoice_id=_id(issued.invoice_id, "invoice"), kind=issued.kind or "invoice",
                customer_id=_id(issued.customer_id, "customer"),
                contract_id=_optional_id(issued.contract_id, "contract"), owner_id=issued.owner_id,
                currency=issued.total.currency, total=_amount(issued.total, "invoice total"),
                issued_on=_date(issued.issued_on, "issue date"), due_on=_optional_date(issued.due_on, "due date"))
        case billing_ev.InvoiceCancelled.DESCRIPTOR.full_name:
            await models.invoice_cancelled(_id(event.message(billing_ev.InvoiceCancelled).invoice_id, "invoice"))
        case billing_ev.PaymentReceived.DESCRIPTOR.full_name:
            received = event.message(billing_ev.PaymentReceived)
            await models.payment_received(
                payment_id=_id(received.payment_id, "payment"), customer_id=_id(received.customer_id, "customer"),
                owner_id=received.owner_id, currency=received.amount.currency,
                amount=_amount(received.amount, "payment amount"),
                received_on=_date(received.received_on, "receipt date"))
        case billing_ev.PaymentAllocated.DESCRIPTOR.full_name:
            allocated = event.message(billing_ev.PaymentAllocated)
            if allocated.target_kind == "invoice":  # the receivable-plan track is not money owed on invoices
                await models.invoice_paid(
                    allocation_id=_id(allocated.allocation_id, "allocation"),
                    payment_id=_id(allocated.payment_id, "payment"), invoice_id=_id(allocated.target_id, "invoice"),
                    amount=_amount(allocated.amount, "allocated amount"))


_STATUS = {opportunities_pb2.OPPORTUNITY_STATUS_OPEN: "open", opportunities_pb2.OPPORTUNITY_STATUS_WON: "won",
           opportunities_pb2.OPPORTUNITY_STATUS_LOST: "lost"}


async def _opportunity_event(models: ReadModels, event: Event) -> None:
    kinds = {m.DESCRIPTOR.full_name: m for m in (opportunities_ev.OpportunityCreated,
                                                   opportunities_ev.OpportunityStageChanged,
                                                   opportunities_ev.OpportunityWon, opportunities_ev.OpportunityLost)}
    if event.type not in kinds:
        return
    o = event.message(kinds[event.type]).opportunity
    await models.opportunity(OpportunitySnapshot(
        id=_id(o.id, "opportunity"), customer_id=_id(o.customer_id, "customer"), pipeline_id=o.pipeline_id,
        stage_id=o.stage_id, status=_STATUS.get(o.status, "open"), currency=o.amount.currency,
        amount=_amount(o.amount, "opportunity amount"), probability=max(0, min(100, o.probability)),
        owner_id=o.owner_id, team_id=o.team_id, department_path=o.department_path or "/", version=o.version))
