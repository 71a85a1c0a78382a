"""The records an order names, asked of their owners (customers, contracts) over a caller
channel: the calls carry the caller's own signed principal, so the owner applies its data scope
(`crmkit.references.look_up` turns "not found" and "not yours" alike into 404)."""

from __future__ import annotations

import uuid

import grpc

from crm.contracts.v1 import contracts_pb2, contracts_pb2_grpc
from crm_orders.app.messages import contract_lines, decimal_or, iso_date
from crm_orders.domain.model import Contract, ContractState
from crmkit.errors import NotFound
from crmkit.references import CustomerDirectory, CustomerFacts, look_up

# A contract from signature on may be ordered against (an expired one is refused by its end date).
_SIGNED = {
    contracts_pb2.CONTRACT_STATUS_SIGNED: ContractState.SIGNED,
    contracts_pb2.CONTRACT_STATUS_ACTIVE: ContractState.SIGNED,
    contracts_pb2.CONTRACT_STATUS_EXPIRED: ContractState.SIGNED,
    contracts_pb2.CONTRACT_STATUS_RENEWED: ContractState.SIGNED,
    contracts_pb2.CONTRACT_STATUS_TERMINATED: ContractState.TERMINATED,
}


class OwnerReferences:
    def __init__(self, customers: grpc.aio.Channel, contracts: grpc.aio.Channel) -> None:
        self._customers = CustomerDirectory(customers)
        self._contracts = contracts_pb2_grpc.ContractsServiceStub(contracts)

    async def customer(self, customer_id: uuid.UUID) -> CustomerFacts:
        return await self._customers.customer(str(customer_id))

    async def signed_contract(self, contract_id: uuid.UUID) -> Contract:
        # Answered as a contract out of scope in the copy is (CONTRACT_NOT_FOUND): no tell-tale.
        absent = NotFound(f"contract {contract_id} not found (or not signed yet)", reason="CONTRACT_NOT_FOUND",
                          metadata={"contract_id": str(contract_id)})
        try:
            c = (await look_up(self._contracts.GetContract, contracts_pb2.GetContractRequest(id=str(contract_id)),
                               what="contract")).contract
        except NotFound:
            raise absent from None
        state = _SIGNED.get(c.status)
        if state is None:
            raise absent
        return Contract(
            id=contract_id, number=c.contract_number, customer_id=uuid.UUID(c.customer_id),
            customer_name=c.customer_name, owner_id=c.owner_id, team_ids=(c.team_id,) if c.team_id else (),
            department_path=c.department_path or "/", amount=decimal_or(c.amount.amount),
            currency=c.currency or c.amount.currency or "CNY", start_date=iso_date(c.start_date),
            end_date=iso_date(c.end_date), state=state, version=c.version or 1, lines=contract_lines(c.lines))
