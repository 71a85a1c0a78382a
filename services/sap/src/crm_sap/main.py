"""Entry point: `crm-sap serve` runs the SAP integration, `crm-sap migrate` its migrations."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from crm.sap.v1 import sap_pb2, sap_pb2_grpc
from crm_sap.adapters.grpc_api import SapIntegrationServicer
from crm_sap.adapters.odata import ODataClient
from crm_sap.app import intake
from crm_sap.app.inbound import Inbound
from crm_sap.app.outbound import Outbound
from crm_sap.settings import SapSettings
from crmkit import migrations, service
from crmkit.events.consumer import Subscription

NAME = "sap"
SERVICE_NAME = sap_pb2.DESCRIPTOR.services_by_name["SapIntegrationService"].full_name
MIGRATIONS = migrations.locate(__file__)
log = logging.getLogger(__name__)


def sap_client(settings: SapSettings) -> ODataClient:
    return ODataClient(settings.sap_base_url, settings.sap_user, settings.sap_password.get_secret_value(),
                       sap_client=settings.sap_client, timeout=settings.sap_timeout_seconds)


def subscriptions() -> list[Subscription]:
    return [
        Subscription(name="sap-customers", stream="CRM_CUSTOMERS",
                     subjects=["crm.customers.customer.created", "crm.customers.customer.updated"],
                     handler=_dispatch({"crm.customers.customer.created": intake.on_customer_created,
                                        "crm.customers.customer.updated": intake.on_customer_updated})),
        Subscription(name="sap-orders", stream="CRM_ORDERS",
                     subjects=["crm.orders.order.submitted", "crm.orders.order.cancelled"],
                     handler=_dispatch({"crm.orders.order.submitted": intake.on_order_submitted,
                                        "crm.orders.order.cancelled": intake.on_order_cancelled})),
    ]


def _dispatch(handlers: dict[str, Callable[..., Awaitable[None]]]) -> Callable[..., Awaitable[None]]:
    async def handle(uow, event) -> None:  # type: ignore[no-untyped-def]
        await handlers[event.subject](uow, event)
    return handle


def wire(runtime: service.Runtime) -> None:
    settings: SapSettings = runtime.settings  # type: ignore[assignment]
    # httpx logs every request at INFO; the pulls poll SAP all day. Failures are logged by us.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sap = sap_client(settings)
    runtime.grpc.add(sap_pb2_grpc.add_SapIntegrationServiceServicer_to_server,
                     SapIntegrationServicer(runtime.sessions, sap), SERVICE_NAME)
    runtime.subscriptions.extend(subscriptions())
    outbound = Outbound(runtime.sessions, sap, settings.sap_defaults(), batch_size=settings.sap_outbound_batch_size,
                        retry_base=settings.sap_retry_base_seconds, retry_max=settings.sap_retry_max_seconds,
                        claim_seconds=settings.sap_claim_seconds)
    inbound = Inbound(runtime.sessions, sap, page_size=settings.sap_page_size)
    runtime.add_periodic(
        "sap-outbound", outbound.run_pass, settings.sap_outbound_interval_seconds,
        busy=lambda r: r is not None and getattr(r, "applied", 0) >= settings.sap_outbound_batch_size)
    runtime.add_periodic("sap-inbound", inbound.run_pass, settings.sap_poll_interval_seconds)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, SapSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
