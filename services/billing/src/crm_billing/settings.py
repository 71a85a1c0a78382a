"""The billing service's settings: crmkit's, and the billing defaults."""

from __future__ import annotations

from pydantic import Field

from crm_billing.domain.terms import DEFAULT_PAYMENT_TERMS_DAYS
from crmkit.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    # Days from issue to due date when an invoice names none (SAP billing documents, by hand).
    default_payment_terms_days: int = Field(DEFAULT_PAYMENT_TERMS_DAYS, ge=0, le=365)
    # How often the overdue pass runs; it is idempotent, so running it more than daily is harmless.
    overdue_pass_seconds: float = Field(3600.0, gt=0)
    # Asked, as the caller, about the customer, contract and order a write names (R-SEC-02):
    # CRM_CUSTOMERS_TARGET, CRM_CONTRACTS_TARGET, CRM_ORDERS_TARGET.
    customers_target: str = ""
    contracts_target: str = ""
    orders_target: str = ""
