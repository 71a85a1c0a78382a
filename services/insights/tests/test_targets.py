"""Targets on real PostgreSQL (R-DASH-06): managers set them within their scope, bad values and
periods are refused, versions guard changes, every change is an event, and the dashboard shows
them beside the figures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crm_insights.app import use_cases as uc
from crm_insights.domain.periods import PeriodKind
from crm_insights.domain.targets import Level, TargetKind
from crmkit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, StaleVersion
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, WEST_REP

from .test_dashboard import dashboard, month_of_business

pytestmark = pytest.mark.integration

MAY = dt.date(2026, 5, 1)


def new(kind: TargetKind = TargetKind.SIGNING, level: Level = Level.PERSON, subject: str = "rep-east",
        period: PeriodKind = PeriodKind.MONTH, start: dt.date = MAY, value: str = "200000") -> uc.NewTarget:
    return uc.NewTarget(kind=kind, level=level, subject_id=subject, period=period, period_start=start, value=value)


async def test_a_manager_sets_a_target_for_their_rep_and_the_dashboard_shows_it(call, deliver, org, outbox) -> None:
    for event in month_of_business():
        await deliver(event)
    target = await call(EAST_MANAGER, uc.create_target, new(), org=org, currency="CNY")
    await call(EAST_MANAGER, uc.create_target, new(TargetKind.NEW_CUSTOMERS, value="4"), org=org, currency="CNY")
    await call(EAST_MANAGER, uc.create_target, new(level=Level.TEAM, subject="east", value="500000"), org=org,
               currency="CNY")

    mine = (await dashboard(call, EAST_REP)).current
    assert (mine.signing_target, mine.completion) == (Decimal("200000.00"), Decimal("75.00"))
    assert (mine.new_customer_target, mine.new_customer_completion) == (Decimal(4), Decimal("25.00"))
    assert mine.collection_target is None
    team = (await dashboard(call, EAST_MANAGER)).current
    assert (team.signing_target, team.completion) == (Decimal("500000.00"), Decimal("30.00"))
    # the quarter has no target of its own: its months' add up
    quarter = (await dashboard(call, EAST_REP, period=PeriodKind.QUARTER)).current
    assert quarter.signing_target == Decimal("200000.00")

    [event] = [r.message() for r in await outbox() if r.message().target.target_id == str(target.id)]
    assert (event.target.kind, event.target.value, event.set_by) == ("signing", "200000.00", "mgr-east")


async def test_targets_outside_the_callers_scope_are_refused(call, org) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await call(EAST_MANAGER, uc.create_target, new(subject="rep-west"), org=org, currency="CNY")
    assert raised.value.reason == "TARGET_OUT_OF_SCOPE"
    with pytest.raises(PermissionDenied):
        await call(EAST_MANAGER, uc.create_target, new(level=Level.COMPANY, subject=""), org=org, currency="CNY")
    with pytest.raises(PermissionDenied):
        await call(DIRECTOR, uc.create_target, new(level=Level.DEPARTMENT, subject="/finance/"), org=org,
                   currency="CNY")
    assert await call(DIRECTOR, uc.create_target, new(level=Level.TEAM, subject="west"), org=org, currency="CNY")
    assert await call(ADMIN, uc.create_target, new(level=Level.COMPANY, subject=""), org=org, currency="CNY")


@pytest.mark.parametrize(("target", "field"), [
    (new(value="-1"), "value"), (new(value="99999999999999"), "value"),
    (new(start=dt.date(2026, 5, 2)), "period_start"), (new(subject="nobody"), "subject_id"),
    (new(level=Level.DEPARTMENT, subject="sales"), "subject_id"),
    (new(level=Level.COMPANY, subject="rep-east"), "subject_id"),
    (new(TargetKind.NEW_CUSTOMERS, value="1.5"), "value")])
async def test_bad_targets_say_what_is_wrong(call, org, target, field) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await call(ADMIN, uc.create_target, target, org=org, currency="CNY")
    assert raised.value.violations[0].field == field


async def test_one_target_per_subject_kind_and_period_changed_by_version(call, org, outbox) -> None:
    target = await call(EAST_MANAGER, uc.create_target, new(), org=org, currency="CNY")
    with pytest.raises(AlreadyExists):
        await call(EAST_MANAGER, uc.create_target, new(value="1"), org=org, currency="CNY")
    changed = await call(EAST_MANAGER, uc.update_target, target.id, "250000", 1, currency="CNY")
    assert (changed.value, changed.version) == (Decimal("250000.00"), 2)
    with pytest.raises(StaleVersion):
        await call(EAST_MANAGER, uc.update_target, target.id, "1", 1, currency="CNY")
    # out of scope is not found: the west rep cannot even see it
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.update_target, target.id, "1", 0, currency="CNY")
    # the rep sees their own target but may not change it
    assert [t.id for t in await call(EAST_REP, uc.list_targets)] == [target.id]
    assert await call(WEST_REP, uc.list_targets) == []
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, uc.delete_target, target.id, 0, currency="CNY")
    await call(EAST_MANAGER, uc.delete_target, target.id, 2, currency="CNY")
    assert await call(ADMIN, uc.list_targets) == []
    assert [r.type.rsplit(".", 1)[-1] for r in await outbox()] == ["TargetSet", "TargetSet", "TargetDeleted"]
    assert (await dashboard(call, EAST_REP)).current.signing_target is None
