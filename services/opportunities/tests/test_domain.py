"""Pure rules: money arithmetic, transitions, funnel maths (R-OPP-01, R-OPP-03, R-OPP-04)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from crm_opportunities.domain import funnel, model, requirements
from crm_opportunities.domain.defaults import DEFAULT_PIPELINE_ID, DEFAULT_STAGES, default_stage_id
from crm_opportunities.domain.model import Opportunity, OpportunityStatus, Pipeline, Quote, QuoteStatus, Stage
from crm_opportunities.domain.money import LineInput, parse_decimal, parse_line, price_line, totals
from crmkit.errors import Conflict, InvalidArgument, StaleVersion

NOW = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
PIPELINE = Pipeline(DEFAULT_PIPELINE_ID, "New business", True, tuple(
    Stage(default_stage_id(sfx), n, i, p, w, lo) for i, (sfx, n, p, w, lo) in enumerate(DEFAULT_STAGES, start=1)))
QUAL, NEEDS, PROPOSAL, NEGOTIATION, WON, LOST = PIPELINE.stages


def line(qty: str, price: str, discount: str = "0", tax: str = "0") -> LineInput:
    return LineInput("Valve", "DN50", Decimal(qty), Decimal(price), Decimal(discount), Decimal(tax))


def opportunity(**kw) -> Opportunity:
    return Opportunity(**({"id": uuid.uuid4(), "customer_id": uuid.uuid4(), "name": "Valves 2027",
                           "pipeline_id": PIPELINE.id, "stage_id": QUAL.id, "amount": Decimal("1000.00"),
                           "currency": "CNY", "probability": 10, "expected_close_date": None,
                           "owner_id": "rep"} | kw))


def quote(status: QuoteStatus = QuoteStatus.SENT, valid_until: dt.date = dt.date(2026, 12, 31)) -> Quote:
    priced = (price_line(line("1", "100")),)
    return Quote(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 1, status, "CNY", priced, totals(list(priced)),
                 valid_until, "rep")


# Money ------------------------------------------------------------------------------------------

def test_line_net_tax_gross_round_half_up_to_cents() -> None:
    priced = price_line(line("3", "33.335", discount="10", tax="13"))
    # 3 × 33.335 × 0.9 = 90.0045 → 90.00; tax 11.70; gross 101.70
    assert (priced.net_amount, priced.tax_amount, priced.gross_amount) == (
        Decimal("90.00"), Decimal("11.70"), Decimal("101.70"))
    half = price_line(line("1", "0.125"))
    assert half.net_amount == Decimal("0.13")  # half up, not banker's rounding
    assert price_line(line("1", "0.005", tax="50")).tax_amount == Decimal("0.01")


def test_totals_are_sums_of_rounded_lines() -> None:
    lines = [price_line(line("1", "0.333", tax="13")) for _ in range(3)]
    result = totals(lines)
    assert result.net == Decimal("0.99") and result.tax == Decimal("0.12") and result.gross == Decimal("1.11")
    assert totals([]).gross == Decimal("0.00")


def test_money_input_is_validated() -> None:
    with pytest.raises(InvalidArgument):
        parse_decimal("1e400", "amount")
    with pytest.raises(InvalidArgument):
        parse_decimal("abc", "amount")
    with pytest.raises(InvalidArgument):
        parse_decimal("-1", "amount")
    with pytest.raises(InvalidArgument):
        parse_decimal("NaN", "amount")
    with pytest.raises(InvalidArgument, match="decimal places"):
        parse_decimal("1.001", "amount", places=2)
    with pytest.raises(InvalidArgument, match=r"lines\[0\].discount_percent"):
        parse_line(0, "Valve", "", "1", "10", "101", "0")
    with pytest.raises(InvalidArgument, match="quantity"):
        parse_line(0, "Valve", "", "0", "10", "", "")
    assert parse_line(0, " Valve ", "", "2", "10", "", "").discount_percent == 0


# Transitions ------------------------------------------------------------------------------------

def test_move_stage_takes_the_stage_probability_unless_given() -> None:
    moved = model.move_stage(opportunity(), PIPELINE, PROPOSAL.id, 0)
    assert moved.stage_id == PROPOSAL.id and moved.probability == 50 and moved.version == 2
    assert model.move_stage(opportunity(), PIPELINE, NEEDS.id, 30).probability == 30
    with pytest.raises(InvalidArgument):
        model.move_stage(opportunity(), PIPELINE, NEEDS.id, 101)


def test_terminal_and_foreign_stages_are_refused() -> None:
    with pytest.raises(Conflict) as exc:
        model.move_stage(opportunity(), PIPELINE, WON.id, 0)
    assert exc.value.reason == "TERMINAL_STAGE_NEEDS_OUTCOME"
    with pytest.raises(InvalidArgument):
        model.move_stage(opportunity(), PIPELINE, uuid.uuid4(), 0)
    with pytest.raises(Conflict) as exc:
        model.move_stage(opportunity(), PIPELINE, QUAL.id, 0)
    assert exc.value.reason == "SAME_STAGE"


def test_closed_opportunities_do_not_move() -> None:
    lost = model.lose(opportunity(), PIPELINE, NOW, "price", " too dear ", {"price"})
    assert (lost.status, lost.stage_id, lost.probability, lost.lost_note) == (
        OpportunityStatus.LOST, LOST.id, 0, "too dear")
    for action in (lambda o: model.move_stage(o, PIPELINE, NEEDS.id, 0), lambda o: model.win(o, PIPELINE, NOW),
                   lambda o: model.lose(o, PIPELINE, NOW, "price", "", {"price"})):
        with pytest.raises(Conflict) as exc:
            action(lost)
        assert exc.value.reason == "OPPORTUNITY_CLOSED"
    won = model.win(opportunity(), PIPELINE, NOW)
    assert (won.status, won.stage_id, won.probability, won.closed_at) == (OpportunityStatus.WON, WON.id, 100, NOW)
    with pytest.raises(Conflict):
        model.move_stage(won, PIPELINE, NEEDS.id, 0)


def test_lost_needs_a_known_reason_and_versions_are_checked() -> None:
    with pytest.raises(InvalidArgument):
        model.lose(opportunity(), PIPELINE, NOW, "", "", {"price"})
    with pytest.raises(InvalidArgument, match="lost-reason list"):
        model.lose(opportunity(), PIPELINE, NOW, "weather", "", {"price"})
    with pytest.raises(StaleVersion):
        model.check_version(opportunity(version=3), 2)
    model.check_version(opportunity(version=3), 0)


def test_quote_lifecycle_and_expiry() -> None:
    draft = quote(QuoteStatus.DRAFT)
    sent = model.send_quote(draft, NOW)
    assert sent.status is QuoteStatus.SENT and sent.sent_at == NOW
    with pytest.raises(Conflict) as exc:
        model.send_quote(sent, NOW)
    assert exc.value.reason == "QUOTE_NOT_DRAFT"
    assert model.accept_quote(sent, opportunity(), NOW).status is QuoteStatus.ACCEPTED
    assert model.reject_quote(sent, NOW).status is QuoteStatus.REJECTED
    with pytest.raises(Conflict) as exc:
        model.accept_quote(draft, opportunity(), NOW)
    assert exc.value.reason == "QUOTE_NOT_SENT"
    expired = quote(QuoteStatus.SENT, valid_until=dt.date(2026, 11, 24))
    assert expired.effective_status(NOW.date()) is QuoteStatus.EXPIRED
    assert quote(valid_until=NOW.date()).effective_status(NOW.date()) is QuoteStatus.SENT  # valid through the day
    with pytest.raises(Conflict) as exc:
        model.accept_quote(expired, opportunity(), NOW)
    assert exc.value.reason == "QUOTE_EXPIRED"
    with pytest.raises(Conflict) as exc:
        model.accept_quote(sent, opportunity(status=OpportunityStatus.LOST), NOW)
    assert exc.value.reason == "OPPORTUNITY_CLOSED"


def test_pipeline_validation() -> None:
    ok = [("A", 10, False, False), ("Won", 100, True, False), ("Lost", 0, False, True)]
    assert model.validate_pipeline("P", ok) == ok
    with pytest.raises(InvalidArgument):
        model.validate_pipeline("P", ok[:2])
    with pytest.raises(InvalidArgument):
        model.validate_pipeline("P", [("A", 10, False, False), ("a", 10, False, False), *ok[1:]])
    with pytest.raises(InvalidArgument):
        model.validate_pipeline("P", [("A", 120, False, False), *ok[1:]])


# Funnel maths -----------------------------------------------------------------------------------

def test_conversion_and_average_days() -> None:
    assert funnel.conversion_percent(8, 5) == Decimal("62.5")
    assert funnel.conversion_percent(3, 1) == Decimal("33.3")
    assert funnel.conversion_percent(0, 0) is None
    assert funnel.average_days(86400 * 3, 2) == Decimal("1.5")
    assert funnel.average_days(None, 0) is None
    # Open stages convert to the next non-lost stage; terminal stages have no rate.
    rates = funnel.conversions([(1, False, False, 10), (2, False, False, 4), (3, True, False, 1),
                                (4, False, True, 5)])
    assert rates == [Decimal("40.0"), Decimal("25.0"), None, None]


def test_a_quote_line_or_quote_beyond_the_maximum_amount_is_refused() -> None:
    with pytest.raises(InvalidArgument) as product:
        parse_line(0, "Valve", "", "999999999999999", "999999999999999", "", "")
    assert product.value.violations[0].field == "lines[0].unit_price"
    # a line's net below the maximum, its tax pushing the quote over it
    priced = price_line(parse_line(0, "Valve", "", "1", "900000000000000", "", "13"))
    with pytest.raises(InvalidArgument) as total:
        totals([priced])
    assert total.value.violations[0].field == "lines"
    assert totals([price_line(parse_line(0, "Valve", "", "1", "800000000000000", "", "13"))]).gross == Decimal(
        "904000000000000.00")


def test_requirement_quantity_times_target_price_stays_below_the_maximum() -> None:
    today = dt.date(2026, 11, 25)
    ok = dict(title="Valves", specification="DN50", unit="pcs", requested_date=None, attachments=(), today=today)
    requirements.validate(quantity=Decimal("1000"), target_price=Decimal("999999999999"), **ok)
    with pytest.raises(InvalidArgument) as too_large:
        requirements.validate(quantity=Decimal("999999999999999"), target_price=Decimal("999999999999999"), **ok)
    assert [v.field for v in too_large.value.violations] == ["target_price"]
