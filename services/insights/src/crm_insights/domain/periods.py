"""Periods the dashboard and targets speak of: a month, quarter or year, or any run of days, and
the periods beside it (the one before, the same one a year earlier). Pure date arithmetic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from crmkit.errors import InvalidArgument

# A custom period longer than this is a mistake, not a question (ten years and a leap day or two).
MAX_CUSTOM_DAYS = 3660


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    CUSTOM = "custom"


@dataclass(frozen=True)
class Period:
    """From `start` to `end`, both included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def _month_start(day: dt.date, months_back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


def _months(kind: PeriodKind) -> int:
    return {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[kind]


def start_of(kind: PeriodKind, day: dt.date) -> dt.date:
    """The first day of the month, quarter or year containing `day`."""
    if kind is PeriodKind.MONTH:
        return day.replace(day=1)
    if kind is PeriodKind.QUARTER:
        return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    if kind is PeriodKind.YEAR:
        return dt.date(day.year, 1, 1)
    raise ValueError(f"a {kind} period has no natural start")


def calendar_period(kind: PeriodKind, start: dt.date) -> Period:
    """The month, quarter or year beginning on `start`."""
    end = _month_start(start, -_months(kind)) - dt.timedelta(days=1)
    return Period(start, end)


def containing(kind: PeriodKind, day: dt.date) -> Period:
    return calendar_period(kind, start_of(kind, day))


def custom(start: dt.date | None, end: dt.date | None) -> Period:
    if start is None:
        raise InvalidArgument.of("from", "a custom period needs its first day")
    if end is None:
        raise InvalidArgument.of("to", "a custom period needs its last day")
    if end < start:
        raise InvalidArgument.of("to", f"the period ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_CUSTOM_DAYS:
        raise InvalidArgument.of("to", f"a custom period is at most {MAX_CUSTOM_DAYS} days long")
    return Period(start, end)


def previous(kind: PeriodKind, period: Period) -> Period:
    """The period just before: the previous month, quarter or year, or as many days before."""
    if kind is PeriodKind.CUSTOM:
        return Period(period.start - dt.timedelta(days=period.days), period.start - dt.timedelta(days=1))
    return calendar_period(kind, _month_start(period.start, _months(kind)))


def _year_earlier(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def year_earlier(kind: PeriodKind, period: Period) -> Period:
    """The same period a year earlier (a calendar period stays a whole month, quarter or year)."""
    if kind is PeriodKind.CUSTOM:
        return Period(_year_earlier(period.start), _year_earlier(period.end))
    return calendar_period(kind, _year_earlier(period.start))


def require_period_start(kind: PeriodKind, start: dt.date) -> None:
    """A target's period is named by its first day: the 1st of a month, quarter or year."""
    if kind is PeriodKind.CUSTOM:
        raise InvalidArgument.of("period", "a target is for a month, a quarter or a year")
    if start_of(kind, start) != start:
        raise InvalidArgument.of("period_start", f"{start} is not the first day of a {kind}")
