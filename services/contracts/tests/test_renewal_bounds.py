"""A renewal's term cannot run past the calendar (issue 12: renewing a contract that ends
9999-12-31 was a date overflow, a 500)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from crm_contracts.domain import model
from crmkit.errors import Conflict


def _contract(start: dt.date, end: dt.date) -> model.Contract:
    return model.Contract(id=uuid.uuid4(), number="CON-2026-000001", customer_id=uuid.uuid4(), currency="CNY", lines=(),
                          owner_id="rep-east", team_id="east", department_path="/sales/east/",
                          start_date=start, end_date=end)


@pytest.mark.parametrize("start", [dt.date(2026, 1, 1), dt.date(9999, 12, 31)])
def test_renewing_a_contract_that_ends_on_the_last_day_is_a_conflict(start):
    with pytest.raises(Conflict) as caught:
        model.renewal_term(_contract(start, dt.date(9999, 12, 31)))
    assert caught.value.reason == "RENEWAL_BEYOND_CALENDAR"
    with pytest.raises(Conflict):
        model.renewal_term(_contract(dt.date(5000, 1, 1), dt.date(9000, 1, 1)))


def test_a_renewal_that_fits_the_calendar_follows_its_predecessor():
    assert model.renewal_term(_contract(dt.date(9999, 12, 30), dt.date(9999, 12, 30))) == \
        (dt.date(9999, 12, 31), dt.date(9999, 12, 31))
    assert model.renewal_term(_contract(dt.date(2026, 1, 1), dt.date(2026, 12, 31))) == \
        (dt.date(2027, 1, 1), dt.date(2027, 12, 31))
