"""Entry point: `crm-contracts serve` runs the service, `crm-contracts migrate` its migrations."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.contracts.v1 import contracts_pb2, contracts_pb2_grpc
from crm_contracts.adapters.grpc_api import SOURCE, ContractsServicer
from crm_contracts.adapters.identity import IdentityOrg, NoOrg
from crm_contracts.adapters.opportunities import OpportunityDirectory
from crm_contracts.app import ownership, use_cases
from crm_contracts.app.references import Owners
from crm_contracts.domain.approvals import OrgLookup
from crm_contracts.settings import ContractsSettings
from crmkit import migrations, service
from crmkit.db import UnitOfWork
from crmkit.events.consumer import Subscription
from crmkit.references import CustomerDirectory

NAME = "contracts"
SERVICE_NAME = contracts_pb2.DESCRIPTOR.services_by_name["ContractsService"].full_name
MIGRATIONS = migrations.locate(__file__)
log = logging.getLogger(__name__)


async def run_passes_once(sessions: async_sessionmaker[AsyncSession], *, now: dt.datetime,
                          notice_months: int, lifecycle: bool = True) -> tuple[int, int]:
    """One reminder pass and (optionally) one lifecycle pass; what the background loop repeats."""
    async with UnitOfWork(sessions, SOURCE, actor=f"service:{NAME}") as uow:
        reminded = await use_cases.overdue_pass(uow, now)
    changed = 0
    if lifecycle:
        async with UnitOfWork(sessions, SOURCE, actor=f"service:{NAME}") as uow:
            changed = await use_cases.lifecycle_pass(uow, now.date(), notice_months)
    return reminded, changed


def periodic_pass(sessions: async_sessionmaker[AsyncSession],
                  settings: ContractsSettings) -> Callable[[], Awaitable[None]]:
    """Reminders every round; the lifecycle pass (activation, expiry, `contract.expiring`) when its
    own, longer interval has passed."""
    last_lifecycle: float | None = None

    async def run() -> None:
        nonlocal last_lifecycle
        clock = asyncio.get_running_loop().time
        due = last_lifecycle is None or clock() - last_lifecycle >= settings.lifecycle_interval_seconds
        reminded, changed = await run_passes_once(sessions, now=dt.datetime.now(dt.UTC),
                                                  notice_months=settings.renewal_notice_months, lifecycle=due)
        if due:
            last_lifecycle = clock()
        if reminded or changed:
            log.info("periodic pass", extra={"reminded": reminded, "lifecycle_changes": changed})

    return run


def wire(runtime: service.Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, ContractsSettings):
        raise TypeError("the contracts service needs ContractsSettings")
    org: OrgLookup = IdentityOrg(runtime.internal_channel(settings.identity_target)) \
        if settings.identity_target else NoOrg()
    # R-SEC-02: what a contract names is checked with its owner, as the caller.
    owners = Owners(customers=CustomerDirectory(runtime.caller_channel(settings.customers_target)),
                    opportunities=OpportunityDirectory(runtime.caller_channel(settings.opportunities_target)))
    runtime.grpc.add(contracts_pb2_grpc.add_ContractsServiceServicer_to_server,
                     ContractsServicer(runtime.sessions, org, owners=owners), SERVICE_NAME)
    # R-CON-01: an accepted quote drafts its contract; the customer's name and type are asked of
    # the customers service by this service itself (no caller behind an event).
    runtime.subscriptions.append(Subscription(
        name="contracts-quote-accepted", stream="CRM_OPPORTUNITIES", subjects=[use_cases.QUOTE_ACCEPTED_SUBJECT],
        handler=use_cases.drafting_from_quote(
            CustomerDirectory(runtime.internal_channel(settings.customers_target)))))
    # Contracts follow their customer (docs/architecture.md, "Ownership after reassignment and merge").
    for name, subject, handler in (
            ("contracts-customer-reassigned", ownership.CUSTOMER_REASSIGNED_SUBJECT, ownership.on_customer_moved),
            ("contracts-customer-merged", ownership.CUSTOMERS_MERGED_SUBJECT, ownership.on_customer_moved),
            ("contracts-customer-updated", ownership.CUSTOMER_UPDATED_SUBJECT, ownership.on_customer_updated)):
        runtime.subscriptions.append(Subscription(name=name, stream="CRM_CUSTOMERS", subjects=[subject],
                                                  handler=handler))
    runtime.add_periodic("contracts-periodic", periodic_pass(runtime.sessions, settings),
                         settings.reminder_interval_seconds)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, ContractsSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
