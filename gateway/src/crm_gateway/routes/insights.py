"""/api/v1/dashboard and /api/v1/targets: REST in front of crm.insights.v1.InsightsService
(R-DASH-01, R-DASH-06, R-CUS-08, R-UX-03)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from crm.common.v1 import money_pb2
from crm.insights.v1 import insights_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import insights_schemas as s
from crm_gateway.routes.common import IF_MATCH
from crm_gateway.routes.common import json_response as _json

_stub = partial(backend, name="insights")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["insights"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.INSIGHTS_READ))
_MANAGE = Depends(require(p.TARGETS_MANAGE))

_PERIODS = {"month": pb.PERIOD_KIND_MONTH, "quarter": pb.PERIOD_KIND_QUARTER, "year": pb.PERIOD_KIND_YEAR,
            "custom": pb.PERIOD_KIND_CUSTOM}
_DASHBOARD_LEVELS = {"me": pb.LEVEL_PERSON, "team": pb.LEVEL_TEAM, "department": pb.LEVEL_DEPARTMENT,
                     "company": pb.LEVEL_COMPANY}
_TARGET_LEVELS = {"person": pb.LEVEL_PERSON, "team": pb.LEVEL_TEAM, "department": pb.LEVEL_DEPARTMENT,
                  "company": pb.LEVEL_COMPANY}
_KINDS = {"signing": pb.TARGET_KIND_SIGNING, "collection": pb.TARGET_KIND_COLLECTION,
          "new_customers": pb.TARGET_KIND_NEW_CUSTOMERS}


def _name_of(mapping: dict[str, int], value: int) -> str:
    return next(name for name, number in mapping.items() if number == value)


def _money(m: money_pb2.Money) -> s.Money:
    return s.Money.of(m.amount, m.currency)


def _rate(r: pb.Rate) -> str | None:
    return r.percent or None


def _figures(f: pb.Figures) -> s.Figures:
    return s.Figures(
        from_date=dt.date.fromisoformat(f.from_date), to_date=dt.date.fromisoformat(f.to_date),
        signing_target=_money(f.signing_target) if f.HasField("signing_target") else None, signed=_money(f.signed),
        signed_new_customers=_money(f.signed_new_customers),
        signed_existing_customers=_money(f.signed_existing_customers), completion_percent=_rate(f.completion),
        collection_target=_money(f.collection_target) if f.HasField("collection_target") else None,
        collected=_money(f.collected), due=_money(f.due), collection_rate_percent=_rate(f.collection_rate),
        collected_of_signed_percent=_rate(f.collected_of_signed),
        receivables_outstanding=_money(f.receivables_outstanding),
        receivables_overdue=_money(f.receivables_overdue), new_customers=f.new_customers,
        new_customer_target=f.new_customer_target if f.HasField("new_customer_target") else None,
        new_customer_completion_percent=_rate(f.new_customer_completion))


def _target_json(t: pb.Target) -> s.Target:
    return s.Target(
        id=t.id, kind=_name_of(_KINDS, t.kind),  # type: ignore[arg-type]
        level=_name_of(_TARGET_LEVELS, t.level),  # type: ignore[arg-type]
        subject_id=t.subject_id, period=_name_of(_PERIODS, t.period),  # type: ignore[arg-type]
        period_start=dt.date.fromisoformat(t.period_start), value=t.value, currency=t.currency or None,
        version=t.version, set_by=t.set_by, created_at=t.create_time.ToDatetime(UTC),
        updated_at=t.update_time.ToDatetime(UTC))


def _with_etag(t: pb.Target, status_code: int = 200) -> Response:
    headers = {"ETag": etag_of(t.version)}
    if status_code == 201:
        headers["Location"] = f"/api/v1/targets/{t.id}"
    return _json(_target_json(t), status_code, headers)


@router.get("/dashboard", response_model=s.Dashboard,
            summary="The morning dashboard: targets, signed, collected, receivables, new customers, leaderboard",
            description="The first page after sign-in (R-UX-03). Every figure is within your data scope and the "
                        "`level` asked (`me`, `team`: your teams, `department`: your department, `company`), "
                        "which your scope must reach (403 LEVEL_OUT_OF_SCOPE otherwise); without `level`, the "
                        "widest it does. `period` is the month, quarter or year containing `on` (default today), "
                        "or `custom` from `from` to `to`. Each figure comes with the previous period and the "
                        "same period a year earlier. Figures follow the other services' events within seconds; "
                        "a scope with no data answers zeros.")
async def get_dashboard(
    request: Request, caller: Caller = _READ,
    period: s.Period = Query("month"), on: dt.date | None = Query(None, description="A day of the period"),
    from_date: dt.date | None = Query(None, alias="from", description="A custom period's first day"),
    to_date: dt.date | None = Query(None, alias="to", description="A custom period's last day"),
    level: s.DashboardLevel | None = Query(None),
) -> Response:
    reply = await _stub(request).GetDashboard(pb.GetDashboardRequest(
        period=_PERIODS[period], on_date=on.isoformat() if on else "",
        from_date=from_date.isoformat() if from_date else "", to_date=to_date.isoformat() if to_date else "",
        level=_DASHBOARD_LEVELS[level] if level else pb.LEVEL_UNSPECIFIED), metadata=caller.metadata)
    return _json(s.Dashboard(
        level=_name_of(_DASHBOARD_LEVELS, reply.level),  # type: ignore[arg-type]
        period=_name_of(_PERIODS, reply.period),  # type: ignore[arg-type]
        currency=reply.currency,
        current=_figures(reply.current),
        previous_period=_figures(reply.previous_period),
        same_period_last_year=_figures(reply.last_year),
        leaderboard=[s.LeaderboardEntry(
            person_id=e.person_id, rank=e.rank, previous_rank=e.previous_rank or None,
            rank_change=(e.previous_rank - e.rank) if e.previous_rank else None, signed=_money(e.signed),
            collected=_money(e.collected), new_customers=e.new_customers) for e in reply.leaderboard]))


@router.get("/dashboard/key-renewals", response_model=s.KeyRenewalList,
            summary="Key-customer renewals: contracts ending within six months, biggest customers first",
            description="R-DASH-02: the customers in your scope (and `level`) with a contract ending within six "
                        "months, ordered by what they signed over the last two years, with their owner, the end "
                        "date, the last follow-up, open opportunities and overdue receivables.")
async def list_key_renewals(request: Request, caller: Caller = _READ, level: s.DashboardLevel | None = None,
                            limit: int = Query(100, ge=1, le=500)) -> Response:
    reply = await _stub(request).ListKeyRenewals(pb.ListKeyRenewalsRequest(
        level=_DASHBOARD_LEVELS[level] if level else pb.LEVEL_UNSPECIFIED, page_size=limit), metadata=caller.metadata)
    return _json(s.KeyRenewalList(items=[s.KeyRenewal(
        customer_id=r.customer_id, customer_name=r.customer_name, owner_id=r.owner_id,
        signed_two_years=_money(r.signed_two_years), contract_id=r.contract_id,
        end_date=dt.date.fromisoformat(r.end_date),
        last_follow_up_at=r.last_follow_up_time.ToDatetime(UTC) if r.HasField("last_follow_up_time") else None,
        open_opportunities=r.open_opportunities, open_opportunity_amount=_money(r.open_opportunity_amount),
        overdue_receivables=_money(r.overdue_receivables)) for r in reply.renewals]))


@router.get("/dashboard/pipeline", response_model=s.PipelineMatrix,
            summary="The open pipeline as a stage × salesperson matrix (count, amount, weighted amount)",
            description="R-DASH-03: open opportunities in your scope (and `level`), one cell per pipeline stage and "
                        "owner. Stage names come from `GET /api/v1/pipelines`.")
async def get_pipeline_matrix(request: Request, caller: Caller = _READ,
                              level: s.DashboardLevel | None = None) -> Response:
    reply = await _stub(request).GetPipelineMatrix(pb.GetPipelineMatrixRequest(
        level=_DASHBOARD_LEVELS[level] if level else pb.LEVEL_UNSPECIFIED), metadata=caller.metadata)
    return _json(s.PipelineMatrix(
        level=_name_of(_DASHBOARD_LEVELS, reply.level),  # type: ignore[arg-type]
        cells=[s.PipelineCell(pipeline_id=c.pipeline_id, stage_id=c.stage_id, person_id=c.person_id, count=c.count,
                              amount=_money(c.amount), weighted_amount=_money(c.weighted_amount))
               for c in reply.cells]))


@router.get("/targets", response_model=s.TargetList, summary="Targets in your data scope")
async def list_targets(request: Request, caller: Caller = _READ, period: s.TargetPeriod | None = None,
                       period_start: dt.date | None = None, kind: s.TargetKind | None = None) -> Response:
    reply = await _stub(request).ListTargets(pb.ListTargetsRequest(
        period=_PERIODS[period] if period else pb.PERIOD_KIND_UNSPECIFIED,
        period_start=period_start.isoformat() if period_start else "",
        kind=_KINDS[kind] if kind else pb.TARGET_KIND_UNSPECIFIED), metadata=caller.metadata)
    return _json(s.TargetList(items=[_target_json(t) for t in reply.targets]))


@router.post("/targets", status_code=201, response_model=s.Target,
             responses={409: {"description": "TARGET_ALREADY_SET: change that target instead"}},
             summary="Set a signing, collection or new-customer target (R-DASH-06)",
             description="For a person, team, department or the company, for a month, quarter or year named by "
                         "its first day. A manager sets targets within their data scope (403 TARGET_OUT_OF_SCOPE "
                         "otherwise); negative or absurd values are refused. A quarter or year without its own "
                         "target shows the sum of the targets of its months (quarters).")
async def create_target(body: s.TargetCreate, request: Request, caller: Caller = _MANAGE) -> Response:
    reply = await _stub(request).CreateTarget(pb.CreateTargetRequest(
        kind=_KINDS[body.kind], level=_TARGET_LEVELS[body.level], subject_id=body.subject_id,
        period=_PERIODS[body.period], period_start=body.period_start.isoformat(), value=body.value.strip()),
        metadata=caller.metadata)
    return _with_etag(reply.target, 201)


@router.patch("/targets/{target_id}", response_model=s.Target, summary="Change a target's value")
async def update_target(target_id: UUID, body: s.TargetUpdate, request: Request, caller: Caller = _MANAGE,
                        if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).UpdateTarget(pb.UpdateTargetRequest(
        id=str(target_id), value=body.value.strip(), expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.target)


@router.delete("/targets/{target_id}", status_code=204, summary="Remove a target")
async def delete_target(target_id: UUID, request: Request, caller: Caller = _MANAGE,
                        if_match: str | None = IF_MATCH) -> Response:
    await _stub(request).DeleteTarget(pb.DeleteTargetRequest(
        id=str(target_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return Response(status_code=204)
