"""Entry point: `crm-orders serve` runs the service, `crm-orders migrate` its migrations."""

from __future__ import annotations

from crm.orders.v1 import orders_pb2, orders_pb2_grpc
from crm_orders.adapters.grpc_api import OrdersServicer
from crm_orders.adapters.owners import OwnerReferences
from crm_orders.app.handlers import (
    BILLING_SUBJECTS,
    CONTRACT_SUBJECTS,
    CUSTOMER_SUBJECTS,
    SAP_SUBJECTS,
    on_billing_event,
    on_contract_event,
    on_customer_event,
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
        Subscription(name="orders-customers", stream="CRM_CUSTOMERS", subjects=CUSTOMER_SUBJECTS,
                     handler=on_customer_event),
    ]


def wire(runtime: service.Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, OrdersSettings):
        raise TypeError("the orders service needs OrdersSettings")
    references = OwnerReferences(runtime.caller_channel(settings.customers_target),
                                 runtime.caller_channel(settings.contracts_target))
    runtime.grpc.add(orders_pb2_grpc.add_OrdersServiceServicer_to_server,
                     OrdersServicer(runtime.sessions, references), SERVICE_NAME)
    runtime.subscriptions.extend(subscriptions())


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, OrdersSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
