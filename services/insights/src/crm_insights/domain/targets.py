"""Sales targets (R-DASH-06): what a target counts, whose it is, which values make sense, who may
set it, and which targets add up to a period's target. Pure rules, no I/O."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from crm_insights.domain.periods import Period, PeriodKind, calendar_period
from crmkit.auth import DataScope, Principal
from crmkit.errors import InvalidArgument, PermissionDenied

# Above a trillion in the company currency a target is a typo, not an ambition.
MAX_AMOUNT = Decimal("1000000000000")
MAX_NEW_CUSTOMERS = 1_000_000


class TargetKind(StrEnum):
    SIGNING = "signing"
    COLLECTION = "collection"
    NEW_CUSTOMERS = "new_customers"


class Level(StrEnum):
    PERSON = "person"
    TEAM = "team"
    DEPARTMENT = "department"
    COMPANY = "company"


@dataclass(frozen=True)
class Place:
    """Where a target's subject sits in the org chart, so that data scopes apply to targets as to
    any record: a person's user id, team and department; a team's id and department."""

    owner_id: str = ""
    team_id: str = ""
    department_path: str = "/"


@dataclass(frozen=True)
class Target:
    id: uuid.UUID
    kind: TargetKind
    level: Level
    subject_id: str
    period: PeriodKind
    period_start: dt.date
    value: Decimal
    place: Place
    version: int = 1
    set_by: str = ""


def parse_value(kind: TargetKind, raw: str) -> Decimal:
    """An amount with at most two decimals, or a whole number of customers; never negative or
    absurdly large."""
    try:
        value = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidArgument.of("value", f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise InvalidArgument.of("value", f"{raw!r} is not a number")
    if value < 0:
        raise InvalidArgument.of("value", "a target cannot be negative")
    if kind is TargetKind.NEW_CUSTOMERS:
        if value != value.to_integral_value():
            raise InvalidArgument.of("value", "a new-customer target is a whole number of customers")
        if value > MAX_NEW_CUSTOMERS:
            raise InvalidArgument.of("value", f"a new-customer target is at most {MAX_NEW_CUSTOMERS}")
        return value.quantize(Decimal(1))
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidArgument.of("value", "an amount has at most two decimals")
    if value > MAX_AMOUNT:
        raise InvalidArgument.of("value", f"a target amount is at most {MAX_AMOUNT:,}")
    return value.quantize(Decimal("0.01"))


def require_subject(level: Level, subject_id: str) -> str:
    subject = subject_id.strip()
    if level is Level.COMPANY:
        if subject:
            raise InvalidArgument.of("subject_id", "a company target names no subject")
        return ""
    if not subject:
        raise InvalidArgument.of("subject_id", f"a {level} target names its {level}")
    if level is Level.DEPARTMENT and not (subject.startswith("/") and subject.endswith("/")):
        raise InvalidArgument.of("subject_id", "a department is named by its path, e.g. /sales/east/")
    return subject


def may_set(principal: Principal, level: Level, place: Place) -> bool:
    """Managers set targets for what their data scope covers: the company only with the whole
    company in scope, a department inside theirs, a team or person of their team(s)."""
    match principal.data_scope:
        case DataScope.ALL:
            return True
        case DataScope.DEPARTMENT:
            return level is not Level.COMPANY and place.department_path.startswith(principal.department_path)
        case DataScope.TEAM:
            return level in (Level.PERSON, Level.TEAM) and place.team_id in principal.team_ids
    return False


def require_may_set(principal: Principal, target_level: Level, place: Place) -> None:
    if not may_set(principal, target_level, place):
        raise PermissionDenied(f"a {target_level} target there is outside your data scope",
                               reason="TARGET_OUT_OF_SCOPE", metadata={"level": target_level.value})


_FINER = {PeriodKind.YEAR: (PeriodKind.YEAR, PeriodKind.QUARTER, PeriodKind.MONTH),
          PeriodKind.QUARTER: (PeriodKind.QUARTER, PeriodKind.MONTH),
          PeriodKind.MONTH: (PeriodKind.MONTH,),
          PeriodKind.CUSTOM: (PeriodKind.YEAR, PeriodKind.QUARTER, PeriodKind.MONTH)}


def target_for(kind: PeriodKind, period: Period, targets: Iterable[Target]) -> Decimal | None:
    """The target of a period: the targets of the coarsest granularity that lie wholly inside it
    (a quarter without a quarter target has the sum of its month targets); None when none is set."""
    held = list(targets)
    for granularity in _FINER[kind]:
        inside = [t.value for t in held if t.period is granularity
                  and period.start <= t.period_start and calendar_period(granularity, t.period_start).end <= period.end]
        if inside:
            return sum(inside, Decimal(0))
    return None
