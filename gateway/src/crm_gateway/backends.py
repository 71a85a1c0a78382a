"""The services behind the gateway: one gRPC stub each, on `app.state.<name>`, reached at the
`<name>_target` setting. A service whose target is empty is absent: its routes answer 503."""

from __future__ import annotations

from typing import Any

from crm.customers.v1 import customers_pb2_grpc
from crm.identity.v1 import identity_pb2_grpc
from crm.opportunities.v1 import opportunities_pb2_grpc

BACKENDS: dict[str, Any] = {
    "customers": customers_pb2_grpc.CustomersServiceStub,
    "identity": identity_pb2_grpc.IdentityServiceStub,
    "opportunities": opportunities_pb2_grpc.OpportunitiesServiceStub,
}
