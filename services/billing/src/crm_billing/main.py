"""Entry point: `crm-billing serve` runs the service, `crm-billing migrate` its migrations."""

from __future__ import annotations

import functools
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.billing.v1 import billing_pb2_grpc
from crm_billing.adapters.grpc_api import SERVICE_NAME, SOURCE, BillingServicer
from crm_billing.adapters.owners import OwnerReferences
from crm_billing.app import use_cases
from crm_billing.settings import BillingSettings
from crmkit import migrations, service
from crmkit.db import UnitOfWork
from crmkit.events.consumer import Subscription

NAME = "billing"
MIGRATIONS = migrations.locate(__file__)
log = logging.getLogger(__name__)


def subscriptions(terms_days: int) -> list[Subscription]:
    """The facts billing keeps local copies of, and the SAP billing documents it invoices from."""
    return [
        Subscription(name="billing-contract-signed", stream="CRM_CONTRACTS", subjects=[use_cases.CONTRACT_SIGNED],
                     handler=use_cases.on_contract_signed),
        Subscription(name="billing-contract-amended", stream="CRM_CONTRACTS",
                     subjects=[use_cases.CONTRACT_AMENDED], handler=use_cases.on_contract_amended),
        Subscription(name="billing-contract-terminated", stream="CRM_CONTRACTS",
                     subjects=[use_cases.CONTRACT_TERMINATED], handler=use_cases.on_contract_terminated),
        Subscription(name="billing-orders", stream="CRM_ORDERS", subjects=list(use_cases.ORDER_SUBJECTS),
                     handler=use_cases.on_order),
        Subscription(name="billing-customers", stream="CRM_CUSTOMERS", subjects=list(use_cases.CUSTOMER_SUBJECTS),
                     handler=use_cases.on_customer_event),
        Subscription(name="billing-sap-billing-documents", stream="CRM_SAP",
                     subjects=[use_cases.BILLING_DOCUMENT_CHANGED],
                     handler=functools.partial(use_cases.on_billing_document, terms_days=terms_days)),
    ]


async def run_overdue_pass(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """One pass: what became overdue since the last one (safe to run any number of times)."""
    async with UnitOfWork(sessions, SOURCE, actor="service:billing") as uow:
        invoices, instalments = await use_cases.overdue_pass(uow)
    if invoices or instalments:
        log.info("overdue pass", extra={"invoices": invoices, "instalments": instalments})
    return invoices, instalments


def wire(runtime: service.Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, BillingSettings):
        raise TypeError("the billing service needs BillingSettings")
    terms, every = settings.default_payment_terms_days, settings.overdue_pass_seconds
    references = OwnerReferences(runtime.caller_channel(settings.customers_target),
                                 runtime.caller_channel(settings.contracts_target),
                                 runtime.caller_channel(settings.orders_target))
    runtime.grpc.add(billing_pb2_grpc.add_BillingServiceServicer_to_server,
                     BillingServicer(runtime.sessions, references, default_terms_days=terms), SERVICE_NAME)
    runtime.subscriptions.extend(subscriptions(terms))
    runtime.add_periodic("billing-overdue-pass", lambda: run_overdue_pass(runtime.sessions), every)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, BillingSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
