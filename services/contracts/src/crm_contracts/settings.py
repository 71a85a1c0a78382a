"""The contracts service's settings: crmkit's, plus how often its periodic passes run."""

from __future__ import annotations

from crmkit.settings import ServiceSettings


class ContractsSettings(ServiceSettings):
    # R-CON-04: contract.expiring is published once per contract when its end is this near.
    renewal_notice_months: int = 6
    # How often the passes run: approval reminders (step_overdue) and the daily lifecycle pass
    # (activation, expiry, expiring notices). Each pass is idempotent, so running it more often
    # than needed only costs a query.
    reminder_interval_seconds: float = 300.0
    lifecycle_interval_seconds: float = 3600.0
    # R-SEC-02: the owners of what a contract names (CRM_CUSTOMERS_TARGET, CRM_OPPORTUNITIES_TARGET).
    customers_target: str = ""
    opportunities_target: str = ""
