"""Entry point: `crm-opportunities serve` runs the service, `crm-opportunities migrate` its migrations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from crm.identity.v1 import identity_pb2, identity_pb2_grpc
from crm.opportunities.v1 import opportunities_pb2, opportunities_pb2_grpc
from crm_opportunities.adapters.grpc_api import OpportunitiesServicer
from crm_opportunities.app import ownership
from crm_opportunities.settings import OpportunitiesSettings
from crmkit import migrations, service
from crmkit.events.consumer import Subscription
from crmkit.references import CustomerDirectory

NAME = "opportunities"
SERVICE_NAME = opportunities_pb2.DESCRIPTOR.services_by_name["OpportunitiesService"].full_name
MIGRATIONS = migrations.locate(__file__)


def role_holders(channel: grpc.aio.Channel) -> Callable[[str], Awaitable[list[str]]]:
    """R-OPP-02: the reviewers of requirement requests, the active holders of a role, through
    identity with this service's own principal (org.read)."""
    stub = identity_pb2_grpc.IdentityServiceStub(channel)

    async def lookup(role: str) -> list[str]:
        # Company-wide: the holders under every root department (the org chart's tops).
        roots, token = [], ""
        while True:
            page = await stub.ListDepartments(identity_pb2.ListDepartmentsRequest(page_size=200, page_token=token),
                                              timeout=5)
            roots += [d for d in page.departments if not d.parent_id]
            token = page.next_page_token
            if not token:
                break
        found: dict[str, None] = {}
        for root in roots:
            reply = await stub.ListRoleHolders(identity_pb2.ListRoleHoldersRequest(
                role=role, department_id=root.id, include_subtree=True), timeout=5)
            found.update(dict.fromkeys(user.id for user in reply.users))
        return list(found)

    return lookup


def wire(runtime: service.Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, OpportunitiesSettings):
        raise TypeError("the opportunities service needs OpportunitiesSettings")
    reviewer_role = settings.reviewer_role
    reviewers = role_holders(runtime.internal_channel(settings.identity_target)) if settings.identity_target else None
    # R-SEC-02: the customer an opportunity names is checked with the customers service, as the caller.
    customers = CustomerDirectory(runtime.caller_channel(settings.customers_target))
    runtime.grpc.add(opportunities_pb2_grpc.add_OpportunitiesServiceServicer_to_server,
                     OpportunitiesServicer(runtime.sessions, reviewer_role=reviewer_role, reviewers=reviewers,
                                           customers=customers),
                     SERVICE_NAME)
    # Ownership follows the customer (docs/architecture.md, "Ownership after reassignment and merge").
    runtime.subscriptions.append(Subscription(
        name="opportunities-customer-reassigned", stream="CRM_CUSTOMERS",
        subjects=[ownership.CUSTOMER_REASSIGNED_SUBJECT], handler=ownership.on_customer_moved))
    runtime.subscriptions.append(Subscription(
        name="opportunities-customer-merged", stream="CRM_CUSTOMERS",
        subjects=[ownership.CUSTOMERS_MERGED_SUBJECT], handler=ownership.on_customer_moved))


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, OpportunitiesSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
