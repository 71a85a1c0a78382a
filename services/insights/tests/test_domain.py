"""The dashboard's pure rules: periods, target values and sums, who may set what, rates, ranks."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from crm_insights.domain import periods
from crm_insights.domain.figures import PersonFigures, dashboard_level, leaderboard, ranks, rate
from crm_insights.domain.periods import Period, PeriodKind
from crm_insights.domain.targets import Level, Place, Target, TargetKind, may_set, parse_value, target_for
from crmkit.errors import InvalidArgument, PermissionDenied
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, FINANCE


def test_calendar_periods_and_the_ones_beside_them() -> None:
    day = dt.date(2026, 5, 17)
    q2 = periods.containing(PeriodKind.QUARTER, day)
    assert q2 == Period(dt.date(2026, 4, 1), dt.date(2026, 6, 30))
    assert periods.previous(PeriodKind.QUARTER, q2) == Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    january = periods.containing(PeriodKind.MONTH, dt.date(2026, 1, 9))
    assert periods.previous(PeriodKind.MONTH, january) == Period(dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    february = periods.containing(PeriodKind.MONTH, dt.date(2028, 2, 3))
    assert february.end == dt.date(2028, 2, 29)
    assert periods.year_earlier(PeriodKind.MONTH, february) == Period(dt.date(2027, 2, 1), dt.date(2027, 2, 28))
    assert periods.containing(PeriodKind.YEAR, day) == Period(dt.date(2026, 1, 1), dt.date(2026, 12, 31))


def test_a_custom_period_is_compared_with_as_many_days_before() -> None:
    ten_days = periods.custom(dt.date(2026, 3, 11), dt.date(2026, 3, 20))
    assert periods.previous(PeriodKind.CUSTOM, ten_days) == Period(dt.date(2026, 3, 1), dt.date(2026, 3, 10))
    assert periods.year_earlier(PeriodKind.CUSTOM, ten_days) == Period(dt.date(2025, 3, 11), dt.date(2025, 3, 20))


@pytest.mark.parametrize(("start", "end", "field"), [
    (dt.date(2026, 3, 20), dt.date(2026, 3, 11), "to"), (None, dt.date(2026, 3, 11), "from"),
    (dt.date(2000, 1, 1), dt.date(2026, 1, 1), "to")])
def test_a_custom_period_must_make_sense(start, end, field) -> None:
    with pytest.raises(InvalidArgument) as raised:
        periods.custom(start, end)
    assert raised.value.violations[0].field == field


def test_a_target_period_is_named_by_its_first_day() -> None:
    periods.require_period_start(PeriodKind.QUARTER, dt.date(2026, 4, 1))
    with pytest.raises(InvalidArgument, match="not the first day of a quarter"):
        periods.require_period_start(PeriodKind.QUARTER, dt.date(2026, 5, 1))


@pytest.mark.parametrize(("kind", "raw", "message"), [
    (TargetKind.SIGNING, "-5", "negative"), (TargetKind.SIGNING, "1e15", "at most"),
    (TargetKind.SIGNING, "12.345", "two decimals"), (TargetKind.COLLECTION, "abc", "not a number"),
    (TargetKind.COLLECTION, "NaN", "not a number"), (TargetKind.NEW_CUSTOMERS, "2.5", "whole number"),
    (TargetKind.NEW_CUSTOMERS, "5000000", "at most")])
def test_absurd_target_values_are_refused(kind, raw, message) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_value(kind, raw)


def test_sensible_target_values_are_kept_to_the_cent() -> None:
    assert parse_value(TargetKind.SIGNING, " 1200000.5 ") == Decimal("1200000.50")
    assert parse_value(TargetKind.NEW_CUSTOMERS, "12") == Decimal(12)


def _target(period: PeriodKind, start: dt.date, value: str) -> Target:
    return Target(id=uuid.uuid4(), kind=TargetKind.SIGNING, level=Level.PERSON, subject_id="rep-east",
                  period=period, period_start=start, value=Decimal(value), place=Place("rep-east", "east"))


def test_a_period_without_its_own_target_adds_up_the_finer_ones() -> None:
    q2 = periods.containing(PeriodKind.QUARTER, dt.date(2026, 4, 1))
    months = [_target(PeriodKind.MONTH, dt.date(2026, m, 1), "100000") for m in (4, 5, 6, 7)]
    assert target_for(PeriodKind.QUARTER, q2, months) == Decimal(300000)  # July is outside
    quarter = _target(PeriodKind.QUARTER, dt.date(2026, 4, 1), "250000")
    assert target_for(PeriodKind.QUARTER, q2, [*months, quarter]) == Decimal(250000)  # its own wins
    assert target_for(PeriodKind.MONTH, periods.containing(PeriodKind.MONTH, dt.date(2026, 8, 3)), months) is None


def test_managers_set_targets_within_their_scope_only() -> None:
    east, west = Place("rep-east", "east", "/sales/east/"), Place("rep-west", "west", "/sales/west/")
    assert may_set(EAST_MANAGER, Level.PERSON, east) and not may_set(EAST_MANAGER, Level.PERSON, west)
    assert not may_set(EAST_MANAGER, Level.DEPARTMENT, Place(department_path="/sales/east/"))
    assert may_set(DIRECTOR, Level.TEAM, west) and not may_set(DIRECTOR, Level.COMPANY, Place())
    assert may_set(ADMIN, Level.COMPANY, Place())
    assert not may_set(EAST_REP, Level.PERSON, east) and not may_set(FINANCE, Level.COMPANY, Place())


def test_the_dashboard_level_follows_the_data_scope() -> None:
    assert dashboard_level(EAST_REP, None) is Level.PERSON
    assert dashboard_level(EAST_MANAGER, None) is Level.TEAM
    assert dashboard_level(ADMIN, None) is Level.COMPANY
    assert dashboard_level(DIRECTOR, Level.TEAM) is Level.TEAM
    with pytest.raises(PermissionDenied) as raised:
        dashboard_level(EAST_REP, Level.TEAM)
    assert raised.value.reason == "LEVEL_OUT_OF_SCOPE"
    with pytest.raises(PermissionDenied):
        dashboard_level(replace(EAST_MANAGER), Level.COMPANY)


def test_rates_round_half_up_and_have_nothing_to_divide_by_zero() -> None:
    assert rate(Decimal("528840.00"), Decimal("1000000.00")) == Decimal("52.88")
    assert rate(Decimal(1), Decimal(3)) == Decimal("33.33")
    assert rate(Decimal(2), Decimal(3)) == Decimal("66.67")
    assert rate(Decimal(5), Decimal(0)) is None and rate(Decimal(5), None) is None


def test_ranks_are_shared_by_equal_figures_and_remember_the_previous_period() -> None:
    now = [PersonFigures("a", signed=Decimal(100)), PersonFigures("b", signed=Decimal(300)),
           PersonFigures("c", signed=Decimal(100)), PersonFigures("d", signed=Decimal(50))]
    assert ranks(now) == {"b": 1, "a": 2, "c": 2, "d": 4}
    board = leaderboard(now, [PersonFigures("a", signed=Decimal(9)), PersonFigures("d", signed=Decimal(1))])
    assert [(e.figures.person_id, e.rank, e.previous_rank) for e in board.entries] == [
        ("b", 1, 0), ("a", 2, 1), ("c", 2, 0), ("d", 4, 2)]
