"""Domain objects ⇄ the protobuf messages of proto/crm/opportunities/v1 (API and events)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.opportunities.v1 import opportunities_pb2 as pb
from crm_opportunities.domain.model import Opportunity, Pipeline, Quote, StageChange
from crmkit.errors import InvalidArgument


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value.astimezone(dt.UTC))
    return out


def money(amount: Decimal, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=f"{amount:.2f}", currency=currency)


def parse_date(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.of(field, f"{value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


def pipeline_to_pb(p: Pipeline) -> pb.Pipeline:
    return pb.Pipeline(id=str(p.id), name=p.name, is_default=p.is_default, stages=[
        pb.Stage(id=str(s.id), name=s.name, order=s.order, default_probability=s.default_probability,
                 is_won=s.is_won, is_lost=s.is_lost) for s in p.stages])


def opportunity_to_pb(o: Opportunity) -> pb.Opportunity:
    return pb.Opportunity(
        id=str(o.id), customer_id=str(o.customer_id), name=o.name, pipeline_id=str(o.pipeline_id),
        stage_id=str(o.stage_id), amount=money(o.amount, o.currency), probability=o.probability,
        expected_close_date=o.expected_close_date.isoformat() if o.expected_close_date else "",
        status=pb.OpportunityStatus.Value(f"OPPORTUNITY_STATUS_{o.status.value.upper()}"),
        lost_reason=o.lost_reason, lost_note=o.lost_note, owner_id=o.owner_id, team_id=o.team_id,
        department_path=o.department_path, version=o.version, create_time=ts(o.created_at),
        update_time=ts(o.updated_at), close_time=ts(o.closed_at), created_by=o.created_by,
        lead_id=str(o.lead_id) if o.lead_id else "", won_by=o.won_by)


def stage_change_to_pb(c: StageChange) -> pb.StageChange:
    return pb.StageChange(opportunity_id=str(c.opportunity_id),
                          from_stage_id=str(c.from_stage_id) if c.from_stage_id else "",
                          to_stage_id=str(c.to_stage_id), changed_by=c.changed_by, change_time=ts(c.changed_at))


def quote_to_pb(q: Quote, today: dt.date) -> pb.Quote:
    status = q.effective_status(today)
    return pb.Quote(
        id=str(q.id), opportunity_id=str(q.opportunity_id), customer_id=str(q.customer_id),
        quote_version=q.quote_version, status=pb.QuoteStatus.Value(f"QUOTE_STATUS_{status.value.upper()}"),
        currency=q.currency, lines=[
            pb.QuoteLine(product=li.product, specification=li.specification, quantity=str(li.quantity),
                         unit_price=str(li.unit_price), discount_percent=str(li.discount_percent),
                         tax_rate_percent=str(li.tax_rate_percent), net_amount=f"{li.net_amount:.2f}",
                         tax_amount=f"{li.tax_amount:.2f}", gross_amount=f"{li.gross_amount:.2f}")
            for li in q.lines],
        net_total=money(q.totals.net, q.currency), tax_total=money(q.totals.tax, q.currency),
        gross_total=money(q.totals.gross, q.currency), valid_until=q.valid_until.isoformat(),
        owner_id=q.owner_id, team_id=q.team_id, department_path=q.department_path, create_time=ts(q.created_at),
        send_time=ts(q.sent_at), decide_time=ts(q.decided_at), created_by=q.created_by, note=q.note,
        requirement_request_id=str(q.requirement_request_id) if q.requirement_request_id else "")
