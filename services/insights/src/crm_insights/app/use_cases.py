"""What callers ask of the insights service: the dashboard (R-DASH-01, R-CUS-08) and targets
(R-DASH-06). Each use case runs in one unit of work; targets' changes emit their events with it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal

from crm.insights.v1 import events_pb2 as ev
from crm_insights.adapters.dashboard_queries import DashboardQueries, Sums
from crm_insights.adapters.list_queries import KeyRenewal, ListQueries, PipelineCell
from crm_insights.adapters.targets_repository import TargetsRepository
from crm_insights.app.org import OrgChart
from crm_insights.domain import periods
from crm_insights.domain.figures import Leaderboard, dashboard_level, leaderboard, rate
from crm_insights.domain.periods import Period, PeriodKind
from crm_insights.domain.targets import (
    Level,
    Place,
    Target,
    TargetKind,
    parse_value,
    require_may_set,
    require_subject,
    target_for,
)
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, InvalidArgument, NotFound, StaleVersion
from crmkit.ids import new_id

DEFAULT_RENEWALS, MAX_RENEWALS = 100, 500


@dataclass(frozen=True)
class DashboardQuery:
    period: PeriodKind = PeriodKind.MONTH
    on: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    level: Level | None = None


@dataclass(frozen=True)
class Figures:
    period: Period
    sums: Sums
    signing_target: Decimal | None
    collection_target: Decimal | None
    new_customer_target: Decimal | None

    @property
    def completion(self) -> Decimal | None:
        return rate(self.sums.signed, self.signing_target)

    @property
    def collection_rate(self) -> Decimal | None:
        return rate(self.sums.collected, self.sums.due)

    @property
    def collected_of_signed(self) -> Decimal | None:
        return rate(self.sums.collected, self.sums.signed)

    @property
    def new_customer_completion(self) -> Decimal | None:
        return rate(Decimal(self.sums.new_customers), self.new_customer_target)


@dataclass(frozen=True)
class Dashboard:
    level: Level
    period: PeriodKind
    current: Figures
    previous_period: Figures
    last_year: Figures
    leaderboard: Leaderboard = field(default_factory=Leaderboard)
    currency: str = "CNY"


def _period_asked(query: DashboardQuery, today: dt.date) -> Period:
    if query.period is PeriodKind.CUSTOM:
        return periods.custom(query.start, query.end)
    return periods.containing(query.period, query.on or today)


def _target_subjects(principal: Principal, level: Level) -> list[str]:
    """Whose targets the dashboard of a level shows: the caller's, their teams', their department's
    or the company's."""
    match level:
        case Level.PERSON:
            return [principal.subject]
        case Level.TEAM:
            return list(principal.team_ids)
        case Level.DEPARTMENT:
            return [principal.department_path]
    return [""]


async def _figures(queries: DashboardQueries, repo: TargetsRepository, principal: Principal, level: Level,
                   kind: PeriodKind, period: Period, today: dt.date) -> Figures:
    held = await repo.of_subjects(level, _target_subjects(principal, level), period.start, period.end)

    def target(of: TargetKind) -> Decimal | None:
        return target_for(kind, period, [t for t in held if t.kind is of])

    return Figures(period=period, sums=await queries.sums(principal, level, period, today),
                   signing_target=target(TargetKind.SIGNING), collection_target=target(TargetKind.COLLECTION),
                   new_customer_target=target(TargetKind.NEW_CUSTOMERS))


async def get_dashboard(uow: UnitOfWork, principal: Principal, query: DashboardQuery, *, currency: str,
                        today: dt.date | None = None) -> Dashboard:
    today = today or dt.date.today()
    level = dashboard_level(principal, query.level)
    period = _period_asked(query, today)
    before = periods.previous(query.period, period)
    queries, repo = DashboardQueries(uow.session, currency), TargetsRepository(uow.session)
    figures = [await _figures(queries, repo, principal, level, query.period, p, today)
               for p in (period, before, periods.year_earlier(query.period, period))]
    board = leaderboard(await queries.people(principal, level, period),
                        await queries.people(principal, level, before))
    return Dashboard(level=level, period=query.period, current=figures[0], previous_period=figures[1],
                     last_year=figures[2], leaderboard=board, currency=currency)


async def key_renewals(uow: UnitOfWork, principal: Principal, level: Level | None, limit: int, *, currency: str,
                      today: dt.date | None = None) -> list[KeyRenewal]:
    """R-DASH-02: customers with a contract ending within six months, by their signed total over the
    last two years."""
    if not 0 <= limit <= MAX_RENEWALS:
        raise InvalidArgument.of("limit", f"must be between 1 and {MAX_RENEWALS}")
    return await ListQueries(uow.session, currency).key_renewals(
        principal, dashboard_level(principal, level), today or dt.date.today(), limit or DEFAULT_RENEWALS)


async def pipeline_matrix(uow: UnitOfWork, principal: Principal, level: Level | None, *,
                          currency: str) -> tuple[Level, list[PipelineCell]]:
    """R-DASH-03: open opportunities by stage and salesperson."""
    chosen = dashboard_level(principal, level)
    return chosen, await ListQueries(uow.session, currency).pipeline(principal, chosen)


# Targets ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTarget:
    kind: TargetKind
    level: Level
    subject_id: str
    period: PeriodKind
    period_start: dt.date
    value: str


async def _place(org: OrgChart, level: Level, subject_id: str) -> Place:
    match level:
        case Level.PERSON:
            found = await org.person(subject_id)
        case Level.TEAM:
            found = await org.team(subject_id)
        case Level.DEPARTMENT:
            return Place(department_path=subject_id)
        case _:
            return Place()
    if found is None:
        raise InvalidArgument.of("subject_id", f"there is no {level} {subject_id!r} in the org chart")
    return found


def _snapshot(target: Target, currency: str) -> ev.TargetSnapshot:
    return ev.TargetSnapshot(target_id=str(target.id), kind=target.kind.value, level=target.level.value,
                             subject_id=target.subject_id, period=target.period.value,
                             period_start=target.period_start.isoformat(), value=str(target.value),
                             currency=currency)


async def create_target(uow: UnitOfWork, principal: Principal, new: NewTarget, *, org: OrgChart,
                        currency: str) -> Target:
    periods.require_period_start(new.period, new.period_start)
    value = parse_value(new.kind, new.value)
    subject = require_subject(new.level, new.subject_id)
    place = await _place(org, new.level, subject)
    require_may_set(principal, new.level, place)
    target = Target(id=new_id(), kind=new.kind, level=new.level, subject_id=subject, period=new.period,
                    period_start=new.period_start, value=value, place=place, set_by=principal.subject)
    if not await TargetsRepository(uow.session).add(target, currency):
        raise AlreadyExists(f"the {new.level} {subject or 'company'} already has a {new.kind} target for the "
                            f"{new.period} starting {new.period_start}; change that one",
                            reason="TARGET_ALREADY_SET")
    uow.emit(ev.TargetSet(target=_snapshot(target, currency), version=target.version, set_by=principal.subject),
             subject_id=str(target.id))
    await uow.commit()
    return target


async def _held(repo: TargetsRepository, principal: Principal, target_id: uuid.UUID,
                expected_version: int) -> Target:
    target = await repo.get(principal, target_id, for_update=True)
    if target is None:
        raise NotFound(f"target {target_id} not found")
    require_may_set(principal, target.level, target.place)
    if expected_version and expected_version != target.version:
        raise StaleVersion(f"the target is at version {target.version}, not {expected_version}")
    return target


async def update_target(uow: UnitOfWork, principal: Principal, target_id: uuid.UUID, value: str,
                        expected_version: int, *, currency: str) -> Target:
    repo = TargetsRepository(uow.session)
    target = await _held(repo, principal, target_id, expected_version)
    new_value = parse_value(target.kind, value)
    await repo.change_value(target, new_value, principal.subject)
    changed = replace(target, value=new_value, version=target.version + 1, set_by=principal.subject)
    uow.emit(ev.TargetSet(target=_snapshot(changed, currency), version=changed.version, set_by=principal.subject),
             subject_id=str(target.id))
    await uow.commit()
    return changed


async def delete_target(uow: UnitOfWork, principal: Principal, target_id: uuid.UUID, expected_version: int, *,
                        currency: str) -> None:
    repo = TargetsRepository(uow.session)
    target = await _held(repo, principal, target_id, expected_version)
    await repo.remove(target.id)
    uow.emit(ev.TargetDeleted(target=_snapshot(target, currency), deleted_by=principal.subject),
             subject_id=str(target.id))
    await uow.commit()


async def list_targets(uow: UnitOfWork, principal: Principal, *, period: PeriodKind | None = None,
                       period_start: dt.date | None = None, kind: TargetKind | None = None) -> list[Target]:
    return await TargetsRepository(uow.session).visible(principal, period=period, period_start=period_start,
                                                        kind=kind)
