"""Payment terms: when an invoice falls due."""

from __future__ import annotations

import datetime as dt

from crmkit.errors import InvalidArgument

# Net 30: the common term for B2B manufacturing in China when a contract names none. SAP billing
# documents carry no due date in the event, so they get it too (configurable per deployment:
# CRM_DEFAULT_PAYMENT_TERMS_DAYS).
DEFAULT_PAYMENT_TERMS_DAYS = 30


def due_date(issued_on: dt.date, terms_days: int) -> dt.date:
    if terms_days < 0 or terms_days > 365:
        raise InvalidArgument.of("payment_terms_days", "must be between 0 and 365")
    return issued_on + dt.timedelta(days=terms_days)
