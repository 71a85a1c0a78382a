"""What billing's writes name is checked with its owner, as the caller (R-SEC-02); copied names
come from the customers service; billing records follow their customer (reassignment, merge);
reps read their own customers' billing: on real PostgreSQL, with the real customers, contracts
and orders services answering over gRPC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import grpc
import pytest

from crm.billing.v1 import billing_pb2 as pb
from crm.billing.v1 import billing_pb2_grpc as pb_grpc
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customer_events
from crm_billing.adapters.grpc_api import SERVICE_NAME, BillingServicer
from crm_billing.app import use_cases as uc
from crm_billing.domain.money import InvoiceLineInput
from crmkit.auth import PrincipalSigner
from crmkit.errors import InvalidArgument, NotFound
from crmkit.grpc.client import channel
from crmkit.testing.principals import EAST_REP, FINANCE, WEST_REP, with_grants
from crmkit.testing.service import grpc_in_process

pytestmark = pytest.mark.integration

TODAY = dt.date.today()
WEST = {"owner_id": "rep-west", "team_id": "west", "department_path": "/sales/west/"}
# A West team lead who may bill (an administrator's role): West's scope, billing.write.
WEST_BILLER = dataclasses.replace(WEST_REP, subject="rep-west", permissions=(
    "billing.read", "billing.write", "customers.read", "contracts.read", "orders.read"))


def invoice(customer_id: uuid.UUID, *, contract_id: uuid.UUID | None = None,
            order_id: uuid.UUID | None = None) -> uc.NewInvoice:
    return uc.NewInvoice(customer_id=customer_id, contract_id=contract_id, order_id=order_id, kind="invoice",
                         currency="CNY", issued_on=TODAY, payment_terms_days=0,
                         lines=[InvoiceLineInput("valves", Decimal(2), Decimal("500.00"), Decimal(13))])


def payment(customer_id: uuid.UUID, amount: str = "1130.00", contract_id: uuid.UUID | None = None) -> uc.NewPayment:
    return uc.NewPayment(customer_id=customer_id, contract_id=contract_id, amount=amount, currency="CNY",
                         received_on=TODAY, reference="")


async def statement(call_as_caller, principal, customer_id: uuid.UUID, day: dt.date = TODAY):
    return await call_as_caller(principal, uc.create_statement, customer_id, day, day, "CNY")


async def test_a_random_or_out_of_scope_customer_is_not_found_for_every_write(call_as_caller, owners, sql,
                                                                              outbox) -> None:
    ghost = uuid.uuid4()
    never_signed = await owners.add_customer(signed=False)  # not in finance's `signed` scope
    east = await owners.add_customer()
    refused = []
    for principal, customer_id in ((FINANCE, ghost), (FINANCE, never_signed), (WEST_BILLER, east)):
        for write in (call_as_caller(principal, uc.create_invoice, invoice(customer_id)),
                      call_as_caller(principal, uc.record_payment, payment(customer_id)),
                      statement(call_as_caller, principal, customer_id)):
            with pytest.raises(NotFound) as absent:
                await write
            refused.append((absent.value.reason, absent.value.metadata["reference"]))
    assert refused == [("REFERENCE_NOT_FOUND", "customer")] * 9
    for table in ("invoices", "payments", "statements", "allocations"):
        assert await sql(f"SELECT id FROM {table}") == []
    assert await outbox() == []
    # The same writes for a customer the caller may use go through.
    created = await call_as_caller(FINANCE, uc.create_invoice, invoice(east))
    assert created.customer_id == east
    west = await owners.add_customer(owner_id="rep-west", team_id="west", department_path="/sales/west/")
    assert (await call_as_caller(WEST_BILLER, uc.create_invoice, invoice(west))).owner_id == "rep-west"


async def test_mismatched_contract_or_order_is_refused(call_as_caller, owners, deliver, facts) -> None:
    first, second = await owners.add_customer(), await owners.add_customer()
    contract = uuid.UUID((await _signed_copy(deliver, facts, second)).contract_id)
    with pytest.raises(InvalidArgument) as wrong_contract:
        await call_as_caller(FINANCE, uc.create_invoice, invoice(first, contract_id=contract))
    assert [v.field for v in wrong_contract.value.violations] == ["contract_id"]
    with pytest.raises(InvalidArgument):
        await call_as_caller(FINANCE, uc.record_payment, payment(first, contract_id=contract))
    order = await owners.order(EAST_REP, await owners.sign(second))
    with pytest.raises(InvalidArgument) as wrong_order:
        await call_as_caller(FINANCE, uc.create_invoice, invoice(first, order_id=order))
    assert [v.field for v in wrong_order.value.violations] == ["order_id"]
    with pytest.raises(InvalidArgument):
        await call_as_caller(FINANCE, uc.create_invoice, invoice(second, contract_id=contract, order_id=order))
    with pytest.raises(NotFound):
        await call_as_caller(FINANCE, uc.create_invoice, invoice(second, order_id=uuid.uuid4()))


async def _signed_copy(deliver, facts, customer_id: uuid.UUID, **kwargs):
    message = facts.contract_signed(customer_id=customer_id, **kwargs)
    await deliver(uc.on_contract_signed, facts.event_of(message))
    return message


async def test_a_contract_and_an_order_made_a_moment_ago_are_billed_at_once(call_as_caller, owners) -> None:
    customer = await owners.add_customer()
    contract = await owners.sign(customer, **WEST)  # in the contracts service only, West's
    on_contract = await call_as_caller(FINANCE, uc.create_invoice, invoice(customer, contract_id=contract))
    assert (on_contract.contract_id, on_contract.owner_id, on_contract.department_path) == (
        contract, "rep-west", "/sales/west/")
    ordered_on = await owners.sign(customer)
    order = await owners.order(EAST_REP, ordered_on)  # in the orders service only
    on_order = await call_as_caller(FINANCE, uc.create_invoice, invoice(customer, order_id=order))
    assert (on_order.order_id, on_order.contract_id, on_order.owner_id) == (order, ordered_on, "rep-east")
    by_order, _ = await call_as_caller(FINANCE, uc.list_invoices, page_token="", limit=50, order_id=order)
    assert [r.id for r in by_order] == [on_order.id]
    # A contract out of the caller's scope in the contracts service is not found either (the
    # customer is the West biller's, the contract East's).
    await owners.change_customer(customer, **WEST)
    with pytest.raises(NotFound) as absent:
        await call_as_caller(WEST_BILLER, uc.create_invoice, invoice(customer, contract_id=await owners.sign(customer)))
    assert absent.value.metadata == {"reference": "contract"}


async def test_a_payment_for_a_ghost_customer_is_never_allocated(call_as_caller, owners, sql) -> None:
    with pytest.raises(NotFound):
        await call_as_caller(FINANCE, uc.record_payment, payment(uuid.uuid4()))
    assert await sql("SELECT id FROM payments") == [] and await sql("SELECT id FROM allocations") == []


async def test_statements_name_the_customer_as_its_owner_has_it_and_keep_it_once_issued(call_as_caller,
                                                                                      owners) -> None:
    customer = await owners.add_customer(name="Fuzhou Precision")
    first, _ = await statement(call_as_caller, FINANCE, customer, TODAY - dt.timedelta(days=40))
    issued, _ = await call_as_caller(FINANCE, uc.issue_statement, first.id, 0)
    await owners.change_customer(customer, name="Fuzhou Precision Group")
    second, _ = await statement(call_as_caller, FINANCE, customer)
    again, _ = await call_as_caller(FINANCE, uc.get_statement, first.id)
    assert (issued.customer_name, again.customer_name, second.customer_name) == (
        "Fuzhou Precision", "Fuzhou Precision", "Fuzhou Precision Group")


def reassigned(customer_id: uuid.UUID) -> customer_events.CustomerReassigned:
    return customer_events.CustomerReassigned(
        customer=customers_pb2.Customer(id=str(customer_id), name="Fuzhou Precision", **WEST),
        previous_owner_id="rep-east", owner_id="rep-west", previous_team_id="east")


async def _ledger(call_as_caller, principal) -> set[uuid.UUID]:
    invoices, _ = await call_as_caller(principal, uc.list_invoices, page_token="", limit=50)
    payments, _ = await call_as_caller(principal, uc.list_payments, page_token="", limit=50)
    statements, _ = await call_as_caller(principal, uc.list_statements, page_token="", limit=50)
    return {r.id for r in (*invoices, *payments, *statements)}


async def test_billing_records_follow_a_reassigned_customer(call_as_caller, owners, deliver, facts) -> None:
    customer = await owners.add_customer()
    signed = await _signed_copy(deliver, facts, customer, plan=[("2026-12-31", "11300.00")])
    open_invoice = await call_as_caller(FINANCE, uc.create_invoice,
                                        invoice(customer, contract_id=uuid.UUID(signed.contract_id)))
    settled, _ = await call_as_caller(FINANCE, uc.record_payment, payment(customer))
    drafted, _ = await statement(call_as_caller, FINANCE, customer)
    mine = {open_invoice.id, settled.id, drafted.id}
    assert await _ledger(call_as_caller, EAST_REP) == mine and await _ledger(call_as_caller, WEST_REP) == set()

    await deliver(uc.on_customer_event, facts.event_of(reassigned(customer)))
    assert await _ledger(call_as_caller, WEST_REP) == mine
    assert await _ledger(call_as_caller, EAST_REP) == set()
    instalments = await call_as_caller(WEST_REP, uc.list_instalments, uuid.UUID(signed.contract_id))
    assert [str(r.amount) for r in instalments] == ["11300.00"]
    with pytest.raises(NotFound):
        await call_as_caller(EAST_REP, uc.list_instalments, uuid.UUID(signed.contract_id))


async def test_a_merged_customers_billing_is_the_survivors(call_as_caller, owners, deliver, facts) -> None:
    survivor, merged = await owners.add_customer(**WEST), await owners.add_customer(name="dup")
    on_merged = await call_as_caller(FINANCE, uc.create_invoice, invoice(merged))
    await deliver(uc.on_customer_event, facts.event_of(customer_events.CustomersMerged(
        surviving_id=str(survivor), merged_id=str(merged),
        surviving=customers_pb2.Customer(id=str(survivor), name="Survivor Ltd", **WEST))))
    moved, _ = await call_as_caller(WEST_REP, uc.get_invoice, on_merged.id)
    assert (moved.customer_id, moved.owner_id) == (survivor, "rep-west")
    of_survivor, _ = await call_as_caller(FINANCE, uc.list_invoices, page_token="", limit=50, customer_id=survivor)
    assert [r.id for r in of_survivor] == [on_merged.id]


async def test_a_rep_reads_their_own_customers_billing_and_writes_nothing(sessions, owners, deliver, facts,
                                                                           call_as_caller) -> None:
    east, west = await owners.add_customer(), await owners.add_customer(**WEST)
    east_invoice = await call_as_caller(FINANCE, uc.create_invoice, invoice(east))
    west_invoice = await call_as_caller(FINANCE, uc.create_invoice, invoice(west))
    signer = PrincipalSigner(owners.keys.private_pem)
    async with grpc_in_process("billing", owners.keys.public_pem, pb_grpc.add_BillingServiceServicer_to_server,
                               BillingServicer(sessions, owners.references), SERVICE_NAME) as target:
        async def as_(principal, method: str, request) -> tuple[grpc.StatusCode, object]:
            ch = channel(target, lambda: signer.sign(with_grants(principal)))
            try:
                return grpc.StatusCode.OK, await getattr(pb_grpc.BillingServiceStub(ch), method)(request)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), None
            finally:
                await ch.close()

        code, found = await as_(EAST_REP, "GetInvoice", pb.GetInvoiceRequest(id=str(east_invoice.id)))
        assert (code, found.invoice.id) == (grpc.StatusCode.OK, str(east_invoice.id))
        code, _ = await as_(EAST_REP, "GetInvoice", pb.GetInvoiceRequest(id=str(west_invoice.id)))
        assert code is grpc.StatusCode.NOT_FOUND
        code, listed = await as_(EAST_REP, "ListInvoices", pb.ListInvoicesRequest())
        assert [i.id for i in listed.invoices] == [str(east_invoice.id)]
        code, _ = await as_(EAST_REP, "CreateInvoice", pb.CreateInvoiceRequest(
            customer_id=str(east), currency="CNY",
            lines=[pb.InvoiceLine(description="x", quantity="1", unit_price="1", tax_rate_percent="13")]))
        assert code is grpc.StatusCode.PERMISSION_DENIED
        without_billing = dataclasses.replace(EAST_REP, permissions=tuple(
            p for p in with_grants(EAST_REP).permissions if not p.startswith("billing.")))
        code, _ = await as_(without_billing, "GetInvoice", pb.GetInvoiceRequest(id=str(east_invoice.id)))
        assert code is grpc.StatusCode.PERMISSION_DENIED


async def test_an_allocation_target_out_of_the_callers_scope_is_not_found(call_as_caller, owners, deliver,
                                                                         facts) -> None:
    customer = await owners.add_customer(**WEST)
    received, _ = await call_as_caller(WEST_BILLER, uc.record_payment, payment(customer, amount="50.00"))
    # The customer's contract is East's (signed before a reassignment reached billing): so is its invoice.
    east_contract = await _signed_copy(deliver, facts, customer)
    east_invoice = await call_as_caller(FINANCE, uc.create_invoice,
                                        invoice(customer, contract_id=uuid.UUID(east_contract.contract_id)))
    assert (received.owner_id, east_invoice.owner_id) == ("rep-west", "rep-east")
    with pytest.raises(NotFound):
        await call_as_caller(WEST_BILLER, uc.allocate_payment, received.id, "invoice", east_invoice.id, "")
    paid, allocation, _ = await call_as_caller(FINANCE, uc.allocate_payment, received.id, "invoice",
                                               east_invoice.id, "")
    assert (str(allocation.amount), str(paid.allocated_invoices)) == ("50.00", "50.00")
