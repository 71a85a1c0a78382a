"""The records billing's writes name, asked of their owners (customers, contracts, orders) over
caller channels: the calls carry the caller's own signed principal, so each owner applies its
data scope (`crmkit.references.look_up` answers "not found" and "not yours" alike)."""

from __future__ import annotations

import uuid

import grpc

from crm.contracts.v1 import contracts_pb2, contracts_pb2_grpc
from crm.orders.v1 import orders_pb2, orders_pb2_grpc
from crm_billing.app.references import ContractFacts, OrderFacts
from crmkit.errors import NotFound
from crmkit.references import CustomerDirectory, CustomerFacts, look_up

# Nothing is billed on a contract before it is signed.
_UNSIGNED = {contracts_pb2.CONTRACT_STATUS_UNSPECIFIED, contracts_pb2.CONTRACT_STATUS_DRAFT,
             contracts_pb2.CONTRACT_STATUS_PENDING_APPROVAL, contracts_pb2.CONTRACT_STATUS_RETURNED,
             contracts_pb2.CONTRACT_STATUS_REJECTED, contracts_pb2.CONTRACT_STATUS_APPROVED}


class OwnerReferences:
    def __init__(self, customers: grpc.aio.Channel, contracts: grpc.aio.Channel, orders: grpc.aio.Channel) -> None:
        self._customers = CustomerDirectory(customers)
        self._contracts = contracts_pb2_grpc.ContractsServiceStub(contracts)
        self._orders = orders_pb2_grpc.OrdersServiceStub(orders)

    async def customer(self, customer_id: uuid.UUID) -> CustomerFacts:
        return await self._customers.customer(str(customer_id))

    async def contract(self, contract_id: uuid.UUID) -> ContractFacts:
        c = (await look_up(self._contracts.GetContract, contracts_pb2.GetContractRequest(id=str(contract_id)),
                           what="contract")).contract
        if c.status in _UNSIGNED:
            raise NotFound("contract not found", reason="REFERENCE_NOT_FOUND", metadata={"reference": "contract"})
        return ContractFacts(id=contract_id, customer_id=uuid.UUID(c.customer_id), owner_id=c.owner_id,
                             team_id=c.team_id, department_path=c.department_path or "/")

    async def order(self, order_id: uuid.UUID) -> OrderFacts:
        o = (await look_up(self._orders.GetOrder, orders_pb2.GetOrderRequest(id=str(order_id)), what="order")).order
        return OrderFacts(id=order_id, contract_id=uuid.UUID(o.contract_id), customer_id=uuid.UUID(o.customer_id))
