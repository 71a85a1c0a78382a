"""The insights service's settings: crmkit's, and the company currency every figure is in."""

from __future__ import annotations

from crmkit.settings import ServiceSettings


class InsightsSettings(ServiceSettings):
    # Figures add up amounts in this currency only (no exchange rates yet): CRM_COMPANY_CURRENCY.
    company_currency: str = "CNY"
