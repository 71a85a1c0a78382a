"""The services behind the gateway: one gRPC stub each, on `app.state.<name>`, reached at the
`<name>_target` setting. A service whose target is empty is absent: its routes answer 503."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from crm.billing.v1 import billing_pb2_grpc
from crm.contracts.v1 import contracts_pb2_grpc
from crm.customers.v1 import customers_pb2_grpc
from crm.identity.v1 import identity_pb2_grpc
from crm.insights.v1 import insights_pb2_grpc
from crm.notifications.v1 import notifications_pb2_grpc
from crm.opportunities.v1 import opportunities_pb2_grpc
from crm.orders.v1 import orders_pb2_grpc
from crm.sap.v1 import sap_pb2_grpc
from crmkit.errors import Unavailable

BACKENDS: dict[str, Any] = {
    "billing": billing_pb2_grpc.BillingServiceStub,
    "contracts": contracts_pb2_grpc.ContractsServiceStub,
    "customers": customers_pb2_grpc.CustomersServiceStub,
    "identity": identity_pb2_grpc.IdentityServiceStub,
    "insights": insights_pb2_grpc.InsightsServiceStub,
    "notifications": notifications_pb2_grpc.NotificationsServiceStub,
    "opportunities": opportunities_pb2_grpc.OpportunitiesServiceStub,
    "orders": orders_pb2_grpc.OrdersServiceStub,
    "sap": sap_pb2_grpc.SapIntegrationServiceStub,
}


def backend(request: Request, name: str) -> Any:
    """The stub of service `name` for a route; 503 when the gateway was not told where it is."""
    stub = getattr(request.app.state, name, None)
    if stub is None:
        raise Unavailable(f"the {name} service is not configured (CRM_{name.upper()}_TARGET)")
    return stub
