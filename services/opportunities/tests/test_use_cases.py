"""Use cases on a real PostgreSQL: stage history, won/lost, quotes and quote.accepted, data
scopes, the funnel as one aggregate (R-OPP-01, R-OPP-03, R-OPP-04)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from functools import partial

import pytest

from crm_opportunities.app import use_cases as uc
from crm_opportunities.domain.defaults import DEFAULT_PIPELINE_ID, default_stage_id
from crm_opportunities.domain.model import OpportunityStatus, QuoteStatus
from crm_opportunities.domain.money import parse_line
from crmkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, EAST_REP_2, WEST_REP
from crmkit.testing.service import EveryCustomer

create_opportunity = partial(uc.create_opportunity, customers=EveryCustomer())

pytestmark = pytest.mark.integration

QUAL, NEEDS, PROPOSAL, NEGOTIATION, WON, LOST = (default_stage_id(s) for s in range(11, 17))
CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c001")
VALID = dt.date.today() + dt.timedelta(days=30)


def new(name: str = "Valves 2027", amount: str = "10000", **kw) -> uc.NewOpportunity:
    return uc.NewOpportunity(**({"customer_id": CUSTOMER, "name": name, "pipeline_id": None, "amount": amount,
                                 "currency": "CNY", "probability": 0, "expected_close_date": dt.date(2027, 3, 31)}
                                | kw))


LINES = [parse_line(0, "Valve DN50", "stainless, PN16", "10", "1200.50", "5", "13"),
         parse_line(1, "Installation", "", "1", "3000", "", "6")]


async def test_default_pipeline_and_lost_reasons_are_seeded(call) -> None:
    [pipeline] = await call(EAST_REP, uc.list_pipelines)
    assert pipeline.id == DEFAULT_PIPELINE_ID and pipeline.is_default and pipeline.name == "New business"
    assert [(s.name, s.default_probability, s.is_won, s.is_lost) for s in pipeline.stages] == [
        ("Qualification", 10, False, False), ("Needs analysis", 25, False, False), ("Proposal", 50, False, False),
        ("Negotiation", 75, False, False), ("Won", 100, True, False), ("Lost", 0, False, True)]
    reasons = dict(await call(EAST_REP, uc.list_lost_reasons))
    assert "price" in reasons and "competitor" in reasons


async def test_several_pipelines_and_an_editable_lost_reason_list(call) -> None:
    stages = [("Survey", 20, False, False), ("Offer", 60, False, False), ("Won", 100, True, False),
              ("Lost", 0, False, True)]
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, uc.create_pipeline, "Service", stages)
    service = await call(ADMIN, uc.create_pipeline, "Service", stages)
    with pytest.raises(AlreadyExists):
        await call(ADMIN, uc.create_pipeline, "service", stages)
    assert [p.name for p in await call(EAST_REP, uc.list_pipelines)] == ["New business", "Service"]
    opp = await call(EAST_REP, create_opportunity, new(pipeline_id=service.id))
    assert opp.stage_id == service.stages[0].id and opp.probability == 20
    with pytest.raises(InvalidArgument):  # a stage of another pipeline
        await call(EAST_REP, uc.move_stage, opp.id, PROPOSAL, 0, 0)
    await call(ADMIN, uc.create_lost_reason, "quality", "Quality concerns")
    with pytest.raises(AlreadyExists):
        await call(ADMIN, uc.create_lost_reason, "quality", "again")
    lost = await call(EAST_REP, uc.mark_lost, opp.id, "quality", "", 0)
    assert lost.lost_reason == "quality" and lost.stage_id == service.stages[-1].id


async def test_stage_changes_are_recorded_with_who_and_when(call, outbox) -> None:
    opp = await call(EAST_REP, create_opportunity, new())
    assert (opp.stage_id, opp.probability, opp.amount, opp.owner_id, opp.team_id) == (
        QUAL, 10, Decimal("10000.00"), "rep-east", "east")
    moved = await call(EAST_REP, uc.move_stage, opp.id, PROPOSAL, 0, opp.version)
    assert moved.probability == 50 and moved.version == 2
    history = await call(EAST_REP, uc.stage_history, opp.id)
    assert [(h.from_stage_id, h.to_stage_id, h.changed_by) for h in history] == [
        (None, QUAL, "rep-east"), (QUAL, PROPOSAL, "rep-east")]
    assert history[0].changed_at <= history[1].changed_at
    events = await outbox()
    assert [e.subject for e in events] == ["crm.opportunities.opportunity.created",
                                           "crm.opportunities.opportunity.stage_changed"]
    assert events[1].message().to_stage_id == str(PROPOSAL)


async def test_won_and_lost_are_final(call, outbox) -> None:
    opp = await call(EAST_REP, create_opportunity, new())
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, uc.mark_lost, opp.id, "weather", "", 0)
    lost = await call(EAST_REP, uc.mark_lost, opp.id, "price", "too dear", 0)
    assert (lost.status, lost.stage_id, lost.probability) == (OpportunityStatus.LOST, LOST, 0)
    with pytest.raises(Conflict) as exc:
        await call(EAST_REP, uc.move_stage, opp.id, NEEDS, 0, 0)
    assert exc.value.reason == "OPPORTUNITY_CLOSED"
    with pytest.raises(Conflict):
        await call(EAST_REP, uc.mark_won, opp.id, 0)
    other = await call(EAST_REP, create_opportunity, new("Pumps"))
    won = await call(EAST_REP, uc.mark_won, other.id, 0)
    assert (won.status, won.stage_id, won.probability) == (OpportunityStatus.WON, WON, 100)
    subjects = [e.subject for e in await outbox()]
    assert "crm.opportunities.opportunity.lost" in subjects and "crm.opportunities.opportunity.won" in subjects


async def test_data_scopes_on_reads_and_writes(call) -> None:
    mine = await call(EAST_REP, create_opportunity, new("East deal"))
    west = await call(WEST_REP, create_opportunity, new("West deal"))
    for principal, visible in ((EAST_REP, {mine.id}), (EAST_REP_2, set()), (EAST_MANAGER, {mine.id}),
                               (DIRECTOR, {mine.id, west.id}), (WEST_REP, {west.id})):
        items, _ = await call(principal, uc.list_opportunities, page_token="", limit=0)
        assert {o.id for o in items} == visible, principal.subject
    with pytest.raises(NotFound):
        await call(EAST_REP_2, uc.get_opportunity, mine.id)
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.move_stage, mine.id, NEEDS, 0, 0)
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.create_quote, mine.id, "", LINES, VALID)
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, create_opportunity, new(owner_id="rep-west"))


async def test_list_pages_with_cursor_and_filters(call) -> None:
    created = [await call(EAST_REP, create_opportunity, new(f"Deal {i}")) for i in range(5)]
    seen, token = [], ""
    while True:
        items, token = await call(EAST_REP, uc.list_opportunities, page_token=token, limit=2)
        seen += items
        if not token:
            break
    assert [o.id for o in seen] == [o.id for o in reversed(created)]
    await call(EAST_REP, uc.move_stage, created[0].id, NEEDS, 0, 0)
    items, _ = await call(EAST_REP, uc.list_opportunities, page_token="", limit=0, stage_id=NEEDS)
    assert [o.id for o in items] == [created[0].id]


async def test_quote_versions_totals_and_acceptance_seed_the_contract(call, outbox) -> None:
    opp = await call(EAST_REP, create_opportunity, new())
    first = await call(EAST_REP, uc.create_quote, opp.id, "", LINES, VALID, "first offer")
    second = await call(EAST_REP, uc.create_quote, opp.id, "", LINES[:1], VALID)
    assert (first.quote_version, second.quote_version) == (1, 2)
    # 10 × 1200.50 × 0.95 = 11404.75, tax 13 % = 1482.6175 → 1482.62; 3000 + 6 % = 180
    assert [(li.net_amount, li.tax_amount) for li in first.lines] == [
        (Decimal("11404.75"), Decimal("1482.62")), (Decimal("3000.00"), Decimal("180.00"))]
    assert (first.totals.net, first.totals.tax, first.totals.gross) == (
        Decimal("14404.75"), Decimal("1662.62"), Decimal("16067.37"))
    assert first.status is QuoteStatus.DRAFT and first.currency == "CNY"
    with pytest.raises(Conflict) as exc:
        await call(EAST_REP, uc.accept_quote, first.id)
    assert exc.value.reason == "QUOTE_NOT_SENT"
    sent = await call(EAST_REP, uc.send_quote, first.id)
    assert sent.status is QuoteStatus.SENT and sent.sent_at is not None
    accepted, won = await call(EAST_REP, uc.accept_quote, first.id)
    assert accepted.status is QuoteStatus.ACCEPTED
    assert (won.status, won.stage_id, won.amount) == (OpportunityStatus.WON, WON, Decimal("14404.75"))
    await call(EAST_REP, uc.send_quote, second.id)
    with pytest.raises(Conflict) as exc:  # the opportunity is already won
        await call(EAST_REP, uc.accept_quote, second.id)
    assert exc.value.reason == "OPPORTUNITY_CLOSED"
    events = await outbox()
    subjects = [e.subject for e in events]
    assert subjects.count("crm.opportunities.quote.sent") == 2
    assert subjects[-4:-1] == ["crm.opportunities.opportunity.stage_changed", "crm.opportunities.opportunity.won",
                               "crm.opportunities.quote.accepted"]
    message = events[-2].message()
    assert message.quote.customer_id == str(CUSTOMER) and message.quote.opportunity_id == str(opp.id)
    assert message.quote.gross_total.amount == "16067.37" and message.quote.gross_total.currency == "CNY"
    assert message.quote.valid_until == VALID.isoformat() and len(message.quote.lines) == 2
    assert message.quote.lines[0].specification == "stainless, PN16" and message.opportunity_name == "Valves 2027"
    assert events[-3].message().quote_id == str(first.id)


async def test_expired_and_rejected_quotes(call, sql) -> None:
    opp = await call(EAST_REP, create_opportunity, new())
    quote = await call(EAST_REP, uc.create_quote, opp.id, "", LINES, VALID)
    await call(EAST_REP, uc.send_quote, quote.id)
    await sql("UPDATE quotes SET valid_until = :d WHERE id = :id", d=dt.date.today() - dt.timedelta(days=1),
              id=quote.id)
    expired = await call(EAST_REP, uc.get_quote, quote.id)
    assert expired.effective_status(dt.date.today()) is QuoteStatus.EXPIRED
    with pytest.raises(Conflict) as exc:
        await call(EAST_REP, uc.accept_quote, quote.id)
    assert exc.value.reason == "QUOTE_EXPIRED"
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, uc.create_quote, opp.id, "", LINES, dt.date.today() - dt.timedelta(days=1))
    other = await call(EAST_REP, uc.create_quote, opp.id, "USD", LINES, VALID)
    assert other.currency == "USD"
    await call(EAST_REP, uc.send_quote, other.id)
    assert (await call(EAST_REP, uc.reject_quote, other.id)).status is QuoteStatus.REJECTED
    with pytest.raises(Conflict):
        await call(EAST_REP, uc.reject_quote, other.id)
    assert (await call(EAST_REP, uc.get_opportunity, opp.id)).status is OpportunityStatus.OPEN


async def test_funnel_counts_amounts_conversion_and_days(call, sql) -> None:
    a = await call(EAST_REP, create_opportunity, new("A", "1000"))
    b = await call(EAST_REP, create_opportunity, new("B", "2000"))
    c = await call(EAST_REP, create_opportunity, new("C", "4000"))
    d = await call(EAST_REP, create_opportunity, new("D", "8000.50"))
    usd = await call(EAST_REP, create_opportunity, new("E", "99", currency="USD"))
    west = await call(WEST_REP, create_opportunity, new("W", "5"))
    await call(EAST_REP, uc.move_stage, b.id, NEEDS, 0, 0)
    await call(EAST_REP, uc.move_stage, c.id, PROPOSAL, 0, 0)  # skips a stage: still reached it
    await call(EAST_REP, uc.move_stage, d.id, NEEDS, 0, 0)
    await call(EAST_REP, uc.mark_won, d.id, 0)
    await call(EAST_REP, uc.mark_lost, a.id, "price", "", 0)
    # Make the stays measurable: every stay of b, c, d in Qualification took exactly 2 days.
    await sql("UPDATE stage_history SET changed_at = changed_at - interval '2 days' "
              "WHERE from_stage_id IS NULL AND opportunity_id IN (:b, :c, :d)", b=b.id, c=c.id, d=d.id)
    pipeline, currency, stages = await call(EAST_REP, uc.funnel, pipeline_id=None)
    assert pipeline.id == DEFAULT_PIPELINE_ID and currency == "CNY"
    by_name = {s.name: s for s in stages}
    assert [s.name for s in stages] == ["Qualification", "Needs analysis", "Proposal", "Negotiation", "Won", "Lost"]
    assert {n: s.count for n, s in by_name.items()} == {
        "Qualification": 1, "Needs analysis": 1, "Proposal": 1, "Negotiation": 0, "Won": 1, "Lost": 1}
    assert by_name["Qualification"].amount == Decimal("0")  # only the USD one is there: not summed in CNY
    assert by_name["Won"].amount == Decimal("8000.50") and by_name["Proposal"].amount == Decimal("4000")
    # Reached (from history): Qualification a b c d e = 5; Needs b c d = 3; Proposal c d = 2; Negotiation d (won)
    assert {n: s.reached for n, s in by_name.items()} == {
        "Qualification": 5, "Needs analysis": 3, "Proposal": 2, "Negotiation": 1, "Won": 1, "Lost": 1}
    assert by_name["Qualification"].conversion_to_next == Decimal("60.0")
    assert by_name["Needs analysis"].conversion_to_next == Decimal("66.7")
    assert by_name["Negotiation"].conversion_to_next == Decimal("100.0")
    assert by_name["Won"].conversion_to_next is None
    # Ended stays in Qualification: a (seconds), b, c, d (2 days each) → (6 days + ε) / 4 ≈ 1.5
    assert by_name["Qualification"].average_days == Decimal("1.5")
    assert by_name["Proposal"].average_days is None
    # Scope and filters: the west rep sees only theirs; a filter by owner and a period.
    _, _, west_view = await call(WEST_REP, uc.funnel, pipeline_id=None)
    assert sum(s.count for s in west_view) == 1 and west_view[0].amount == Decimal("5")
    _, _, director_view = await call(DIRECTOR, uc.funnel, pipeline_id=None, owner_id="rep-west")
    assert sum(s.count for s in director_view) == 1
    _, _, future = await call(DIRECTOR, uc.funnel, pipeline_id=None, from_date=dt.date.today() + dt.timedelta(1))
    assert sum(s.count for s in future) == 0 and all(s.reached == 0 for s in future)
    _, usd_currency, usd_view = await call(EAST_REP, uc.funnel, pipeline_id=None, currency="usd")
    assert usd_currency == "USD" and usd_view[0].amount == Decimal("99.00")
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, uc.funnel, pipeline_id=None, from_date=dt.date(2027, 1, 1), to_date=dt.date(2026, 1, 1))
    assert west.id and usd.id


async def test_funnel_is_one_statement(call, sessions) -> None:
    """No N+1: the funnel is a single aggregate query however many stages there are."""
    from sqlalchemy import event

    statements: list[str] = []
    engine = sessions.kw["bind"].sync_engine

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        await call(EAST_REP, uc.funnel, pipeline_id=DEFAULT_PIPELINE_ID)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # One to load the pipeline, one for the funnel aggregate.
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 2
