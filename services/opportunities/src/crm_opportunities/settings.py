"""The opportunities service's settings: crmkit's, plus who reviews requirement requests."""

from __future__ import annotations

from crmkit.settings import ServiceSettings


class OpportunitiesSettings(ServiceSettings):
    # R-OPP-02: the role whose holders review requirement requests for feasibility
    # (CRM_REVIEWER_ROLE); looked up through identity (CRM_IDENTITY_TARGET) on submission.
    reviewer_role: str = "sales_director"
    # R-SEC-02: where the customers service listens (CRM_CUSTOMERS_TARGET); an opportunity's
    # customer is checked there, as the caller, before it is created.
    customers_target: str = ""
