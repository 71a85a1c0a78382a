"""The orders service's settings: crmkit's, and where the owners of what an order names listen."""

from __future__ import annotations

from crmkit.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    # Asked, as the caller, about the customer and (before its copy arrives) the contract of an
    # order: CRM_CUSTOMERS_TARGET, CRM_CONTRACTS_TARGET.
    customers_target: str = ""
    contracts_target: str = ""
