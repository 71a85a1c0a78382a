"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.common.v1 import money_pb2
from crm.insights.v1 import insights_pb2 as pb
from crm.insights.v1 import insights_pb2_grpc as pb_grpc
from crm_insights.adapters.targets_repository import TargetsRepository
from crm_insights.app import use_cases
from crm_insights.app.org import OrgChart
from crm_insights.domain.figures import Leaderboard
from crm_insights.domain.periods import PeriodKind
from crm_insights.domain.targets import Level, Target, TargetKind
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id

SOURCE = "crm/insights"
READ, MANAGE = "insights.read", "targets.manage"

_KINDS = {pb.TARGET_KIND_SIGNING: TargetKind.SIGNING, pb.TARGET_KIND_COLLECTION: TargetKind.COLLECTION,
          pb.TARGET_KIND_NEW_CUSTOMERS: TargetKind.NEW_CUSTOMERS}
_LEVELS = {pb.LEVEL_PERSON: Level.PERSON, pb.LEVEL_TEAM: Level.TEAM, pb.LEVEL_DEPARTMENT: Level.DEPARTMENT,
           pb.LEVEL_COMPANY: Level.COMPANY}
_PERIODS = {pb.PERIOD_KIND_MONTH: PeriodKind.MONTH, pb.PERIOD_KIND_QUARTER: PeriodKind.QUARTER,
            pb.PERIOD_KIND_YEAR: PeriodKind.YEAR, pb.PERIOD_KIND_CUSTOM: PeriodKind.CUSTOM}


def _reverse(mapping: dict[Any, Any]) -> dict[Any, Any]:
    return {v: k for k, v in mapping.items()}


_KINDS_PB, _LEVELS_PB, _PERIODS_PB = _reverse(_KINDS), _reverse(_LEVELS), _reverse(_PERIODS)


def _required(mapping: dict[Any, Any], value: int, field: str) -> Any:
    if value not in mapping:
        raise InvalidArgument.of(field, "is required")
    return mapping[value]


def _date(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.of(field, f"{value!r} is not a date (YYYY-MM-DD)") from None


def _money(amount: Decimal | None, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=f"{amount or 0:.2f}", currency=currency)


def _rate(value: Decimal | None) -> pb.Rate:
    return pb.Rate(percent="" if value is None else f"{value:.2f}")


def _figures(f: use_cases.Figures, currency: str) -> pb.Figures:
    s = f.sums
    targets: dict[str, Any] = {}
    if f.signing_target is not None:
        targets["signing_target"] = _money(f.signing_target, currency)
    if f.collection_target is not None:
        targets["collection_target"] = _money(f.collection_target, currency)
    if f.new_customer_target is not None:
        targets["new_customer_target"] = int(f.new_customer_target)
    return pb.Figures(
        **targets, from_date=f.period.start.isoformat(), to_date=f.period.end.isoformat(),
        signed=_money(s.signed, currency),
        signed_new_customers=_money(s.signed_new_customers, currency),
        signed_existing_customers=_money(s.signed - s.signed_new_customers, currency),
        completion=_rate(f.completion),
        collected=_money(s.collected, currency), due=_money(s.due, currency),
        collection_rate=_rate(f.collection_rate), collected_of_signed=_rate(f.collected_of_signed),
        receivables_outstanding=_money(s.outstanding, currency), receivables_overdue=_money(s.overdue, currency),
        new_customers=s.new_customers,
        new_customer_completion=_rate(f.new_customer_completion))


def _leaderboard(board: Leaderboard, currency: str) -> list[pb.LeaderboardEntry]:
    return [pb.LeaderboardEntry(person_id=e.figures.person_id, rank=e.rank, previous_rank=e.previous_rank,
                                signed=_money(e.figures.signed, currency),
                                collected=_money(e.figures.collected, currency),
                                new_customers=e.figures.new_customers) for e in board.entries]


def _timestamp(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _target(t: Target, currency: str, created: dt.datetime, updated: dt.datetime) -> pb.Target:
    value = f"{t.value:.0f}" if t.kind is TargetKind.NEW_CUSTOMERS else f"{t.value:.2f}"
    return pb.Target(id=str(t.id), kind=_KINDS_PB[t.kind], level=_LEVELS_PB[t.level], subject_id=t.subject_id,
                     period=_PERIODS_PB[t.period], period_start=t.period_start.isoformat(), value=value,
                     currency="" if t.kind is TargetKind.NEW_CUSTOMERS else currency, version=t.version,
                     set_by=t.set_by, create_time=_timestamp(created), update_time=_timestamp(updated))


class InsightsServicer(pb_grpc.InsightsServiceServicer):
    # R-SEC-03, defence in depth: the service refuses a caller without the permission itself.
    permissions = {"GetDashboard": READ, "ListKeyRenewals": READ, "GetPipelineMatrix": READ, "ListTargets": READ,
                   "CreateTarget": MANAGE, "UpdateTarget": MANAGE, "DeleteTarget": MANAGE}

    def __init__(self, sessions: async_sessionmaker[AsyncSession], org: OrgChart, currency: str) -> None:
        self._sessions = sessions
        self._org = org
        self._currency = currency

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def _target_pb(self, uow: UnitOfWork, target: Target) -> pb.Target:
        created, updated = await TargetsRepository(uow.session).times(target.id)
        return _target(target, self._currency, created, updated)

    async def GetDashboard(self, request: pb.GetDashboardRequest, context: grpc.aio.ServicerContext) -> Any:
        query = use_cases.DashboardQuery(
            period=_PERIODS.get(request.period, PeriodKind.MONTH), on=_date(request.on_date, "on"),
            start=_date(request.from_date, "from"), end=_date(request.to_date, "to"),
            level=_LEVELS.get(request.level))
        async with self._uow() as uow:
            found = await use_cases.get_dashboard(uow, current_principal(), query, currency=self._currency)
        return pb.GetDashboardResponse(
            level=_LEVELS_PB[found.level], period=_PERIODS_PB[found.period],
            current=_figures(found.current, found.currency),
            previous_period=_figures(found.previous_period, found.currency),
            last_year=_figures(found.last_year, found.currency),
            leaderboard=_leaderboard(found.leaderboard, found.currency), currency=found.currency)

    async def ListKeyRenewals(self, request: pb.ListKeyRenewalsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.key_renewals(uow, current_principal(), _LEVELS.get(request.level),
                                                 request.page_size, currency=self._currency)
        renewals = []
        for r in found:
            renewal = pb.KeyRenewal(
                customer_id=str(r.customer_id), customer_name=r.customer_name, owner_id=r.owner_id,
                signed_two_years=_money(r.signed_two_years, self._currency), contract_id=str(r.contract_id),
                end_date=r.end_date.isoformat(), open_opportunities=r.open_opportunities,
                open_opportunity_amount=_money(r.open_opportunity_amount, self._currency),
                overdue_receivables=_money(r.overdue, self._currency))
            if r.last_follow_up is not None:
                renewal.last_follow_up_time.CopyFrom(_timestamp(r.last_follow_up))
            renewals.append(renewal)
        return pb.ListKeyRenewalsResponse(renewals=renewals)

    async def GetPipelineMatrix(self, request: pb.GetPipelineMatrixRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            level, cells = await use_cases.pipeline_matrix(uow, current_principal(), _LEVELS.get(request.level),
                                                           currency=self._currency)
        return pb.GetPipelineMatrixResponse(level=_LEVELS_PB[level], cells=[pb.PipelineCell(
            pipeline_id=c.pipeline_id, stage_id=c.stage_id, person_id=c.person_id, count=c.count,
            amount=_money(c.amount, self._currency), weighted_amount=_money(c.weighted, self._currency))
            for c in cells])

    async def ListTargets(self, request: pb.ListTargetsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.list_targets(
                uow, current_principal(), period=_PERIODS.get(request.period),
                period_start=_date(request.period_start, "period_start"), kind=_KINDS.get(request.kind))
            return pb.ListTargetsResponse(targets=[await self._target_pb(uow, t) for t in found])

    async def CreateTarget(self, request: pb.CreateTargetRequest, context: grpc.aio.ServicerContext) -> Any:
        period_start = _date(request.period_start, "period_start")
        if period_start is None:
            raise InvalidArgument.of("period_start", "is required")
        new = use_cases.NewTarget(
            kind=_required(_KINDS, request.kind, "kind"), level=_required(_LEVELS, request.level, "level"),
            subject_id=request.subject_id, period=_required(_PERIODS, request.period, "period"),
            period_start=period_start, value=request.value)
        async with self._uow() as uow:
            target = await use_cases.create_target(uow, current_principal(), new, org=self._org,
                                                   currency=self._currency)
        async with self._uow() as uow:
            return pb.CreateTargetResponse(target=await self._target_pb(uow, target))

    async def UpdateTarget(self, request: pb.UpdateTargetRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            target = await use_cases.update_target(uow, current_principal(), parse_id(request.id), request.value,
                                                   request.expected_version, currency=self._currency)
        async with self._uow() as uow:
            return pb.UpdateTargetResponse(target=await self._target_pb(uow, target))

    async def DeleteTarget(self, request: pb.DeleteTargetRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.delete_target(uow, current_principal(), parse_id(request.id), request.expected_version,
                                          currency=self._currency)
        return pb.DeleteTargetResponse()
