"""The orders service's settings: crmkit's, nothing more yet."""

from __future__ import annotations

from crmkit.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    pass
