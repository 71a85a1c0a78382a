"""Entry point: `crm-orders serve` runs the service, `crm-orders migrate` its migrations."""

from __future__ import annotations

from crm.orders.v1 import orders_pb2, orders_pb2_grpc
from crm_orders.adapters.grpc_api import OrdersServicer
from crm_orders.app.handlers import (
    BILLING_SUBJECTS,
    CONTRACT_SUBJECTS,
    SAP_SUBJECTS,
    on_billing_event,
    on_contract_event,
    on_sap_event,
)
from crm_orders.settings import OrdersSettings
from crmkit import migrations, service
from crmkit.events.consumer import Subscription

NAME = "orders"
SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name
MIGRATIONS = migrations.locate(__file__)


def subscriptions() -> list[Subscription]:
    """One durable consumer per producing stream, so each producer's events apply in order."""
    return [
        Subscription(name="orders-contracts", stream="CRM_CONTRACTS", subjects=CONTRACT_SUBJECTS,
                     handler=on_contract_event),
        Subscription(name="orders-sap", stream="CRM_SAP", subjects=SAP_SUBJECTS, handler=on_sap_event),
        Subscription(name="orders-billing", stream="CRM_BILLING", subjects=BILLING_SUBJECTS,
                     handler=on_billing_event),
    ]


def wire(runtime: service.Runtime) -> None:
    runtime.grpc.add(orders_pb2_grpc.add_OrdersServiceServicer_to_server, OrdersServicer(runtime.sessions),
                     SERVICE_NAME)
    runtime.subscriptions.extend(subscriptions())


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, OrdersSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
