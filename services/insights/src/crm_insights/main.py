"""Entry point: `crm-insights serve` runs the service, `crm-insights migrate` its migrations."""

from __future__ import annotations

from crm.insights.v1 import insights_pb2, insights_pb2_grpc
from crm_insights.adapters.grpc_api import InsightsServicer
from crm_insights.adapters.identity import IdentityOrgChart
from crm_insights.app.handlers import (
    BILLING_SUBJECTS,
    CONTRACT_SUBJECTS,
    CUSTOMER_SUBJECTS,
    OPPORTUNITY_SUBJECTS,
    on_billing_event,
    on_contract_event,
    on_customer_event,
    on_opportunity_event,
)
from crm_insights.settings import InsightsSettings
from crmkit import migrations, service
from crmkit.events.consumer import Subscription

NAME = "insights"
SERVICE_NAME = insights_pb2.DESCRIPTOR.services_by_name["InsightsService"].full_name
MIGRATIONS = migrations.locate(__file__)


def subscriptions() -> list[Subscription]:
    """One durable consumer per producing stream, so each producer's events apply in order."""
    return [
        Subscription(name="insights-contracts", stream="CRM_CONTRACTS", subjects=CONTRACT_SUBJECTS,
                     handler=on_contract_event),
        Subscription(name="insights-customers", stream="CRM_CUSTOMERS", subjects=CUSTOMER_SUBJECTS,
                     handler=on_customer_event),
        Subscription(name="insights-billing", stream="CRM_BILLING", subjects=BILLING_SUBJECTS,
                     handler=on_billing_event),
        Subscription(name="insights-opportunities", stream="CRM_OPPORTUNITIES", subjects=OPPORTUNITY_SUBJECTS,
                     handler=on_opportunity_event),
    ]


def wire(runtime: service.Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, InsightsSettings):
        raise TypeError("the insights service needs InsightsSettings")
    # Whose targets a manager may set is read from identity's org chart, on this service's behalf.
    org = IdentityOrgChart(runtime.internal_channel(settings.identity_target))
    runtime.grpc.add(insights_pb2_grpc.add_InsightsServiceServicer_to_server,
                     InsightsServicer(runtime.sessions, org, settings.company_currency), SERVICE_NAME)
    runtime.subscriptions.extend(subscriptions())


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, InsightsSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
