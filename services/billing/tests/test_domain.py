"""Pure rules: money, allocation, instalment states, statements, aging (no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from crm_billing.domain import allocation as rules
from crm_billing.domain import statement as st
from crm_billing.domain.allocation import InstalmentState, OpenItem, Track
from crm_billing.domain.money import InvoiceLineInput, parse_line, price_line, totals
from crm_billing.domain.terms import due_date
from crmkit.errors import Conflict, InvalidArgument

D = Decimal
DAY = dt.date(2026, 3, 1)


# Money (R-BIL-01) ------------------------------------------------------------------------------

def test_tax_is_computed_per_line_and_rounded_half_up() -> None:
    # 3 × 33.335 = 100.005 -> 100.01 (half-up); 13 % of 100.01 = 13.0013 -> 13.00
    a = price_line(InvoiceLineInput("阀门 valve", D("3"), D("33.335"), D("13")))
    assert (a.net_amount, a.tax_amount, a.gross_amount) == (D("100.01"), D("13.00"), D("113.01"))
    # 0.125 tax rounds up to 0.13 (half-up, not banker's 0.12)
    b = price_line(InvoiceLineInput("bolt", D("1"), D("1.25"), D("10")))
    assert (b.net_amount, b.tax_amount) == (D("1.25"), D("0.13"))
    t = totals([a, b])
    assert (t.net, t.tax, t.gross) == (D("101.26"), D("13.13"), D("114.39"))


def test_due_date_from_payment_terms() -> None:
    assert due_date(dt.date(2026, 1, 31), 30) == dt.date(2026, 3, 2)
    with pytest.raises(InvalidArgument):
        due_date(DAY, 400)


# Allocation rules (R-BIL-02) --------------------------------------------------------------------

def test_allowed_amount_takes_what_fits_and_refuses_more() -> None:
    fit = rules.allowed_amount(source_unallocated=D("500"), item_open=D("300"), source_currency="CNY",
                               item_currency="CNY", requested=None)
    assert fit == D("300")
    with pytest.raises(Conflict) as over_item:
        rules.allowed_amount(source_unallocated=D("500"), item_open=D("300"), source_currency="CNY",
                             item_currency="CNY", requested=D("300.01"))
    assert over_item.value.reason == "OVER_ALLOCATION"
    with pytest.raises(Conflict) as over_payment:
        rules.allowed_amount(source_unallocated=D("100"), item_open=D("300"), source_currency="CNY",
                             item_currency="CNY", requested=D("100.01"))
    assert over_payment.value.reason == "OVER_ALLOCATION"
    with pytest.raises(Conflict) as currency:
        rules.allowed_amount(source_unallocated=D("100"), item_open=D("300"), source_currency="USD",
                             item_currency="CNY", requested=None)
    assert currency.value.reason == "CURRENCY_MISMATCH"
    with pytest.raises(Conflict) as settled:
        rules.allowed_amount(source_unallocated=D("100"), item_open=D("0"), source_currency="CNY",
                             item_currency="CNY", requested=None)
    assert settled.value.reason == "ITEM_SETTLED"


def _item(id_: str, open_amount: str, *refs: str, currency: str = "CNY") -> OpenItem:
    return OpenItem(id_, Track.INVOICE, currency, D(open_amount), refs)


def test_auto_match_by_reference_then_by_unique_amount() -> None:
    items = [_item("a", "100", "INV-2026-000001"), _item("b", "100", "INV-2026-000002"), _item("c", "250", "90001")]
    # the reference names one
    assert rules.auto_match(amount=D("40"), currency="CNY", reference="payment for inv-2026-000002",
                            items=items).id == "b"
    # no reference: the amount matches exactly one open balance
    assert rules.auto_match(amount=D("250"), currency="CNY", reference="", items=items).id == "c"
    # two balances of 100: ambiguous, left to a person
    assert rules.auto_match(amount=D("100"), currency="CNY", reference="", items=items) is None
    # another currency never matches
    assert rules.auto_match(amount=D("250"), currency="USD", reference="", items=items) is None
    # a reference naming nothing falls back to the amount
    assert rules.auto_match(amount=D("250"), currency="CNY", reference="wire 7781", items=items).id == "c"


def test_instalment_states() -> None:
    def state(received: str, due: dt.date, void: bool = False) -> InstalmentState:
        return rules.instalment_state(amount=D("100"), received=D(received), due_date=due, today=DAY, void=void)

    later, earlier = DAY + dt.timedelta(days=1), DAY - dt.timedelta(days=1)
    assert state("0", later) is InstalmentState.PENDING
    assert state("40", later) is InstalmentState.PARTIALLY_RECEIVED
    assert state("100", earlier) is InstalmentState.RECEIVED
    assert state("40", earlier) is InstalmentState.OVERDUE
    assert state("0", DAY) is InstalmentState.PENDING  # due today is not yet overdue
    assert state("0", later, void=True) is InstalmentState.VOID


# Property: whatever the sequence, balances stay consistent ---------------------------------------


@dataclass
class Ledger:
    """A customer's invoices, credit notes and payments with allocations made by the domain rules."""

    invoices: list[list[Decimal]] = field(default_factory=list)  # [total, allocated]
    credits: list[list[Decimal]] = field(default_factory=list)  # [total, applied]
    payments: list[list[Decimal]] = field(default_factory=list)  # [amount, allocated]
    allocations: list[tuple[str, int, int, Decimal]] = field(default_factory=list)

    def apply(self, kind: str, source: int, target: int, requested: Decimal | None) -> None:
        sources = self.payments if kind == "payment" else self.credits
        if not sources or not self.invoices:
            return
        src, inv = sources[source % len(sources)], self.invoices[target % len(self.invoices)]
        before = (list(src), list(inv))
        try:
            amount = rules.allowed_amount(source_unallocated=src[0] - src[1], item_open=inv[0] - inv[1],
                                          source_currency="CNY", item_currency="CNY", requested=requested)
        except (Conflict, InvalidArgument):
            assert [src, inv] == list(before)  # a refused allocation changes nothing
            return
        src[1] += amount
        inv[1] += amount
        self.allocations.append((kind, source % len(sources), target % len(self.invoices), amount))

    def auto(self, payment: int) -> None:
        if not self.payments:
            return
        p = self.payments[payment % len(self.payments)]
        match = rules.auto_match(amount=p[0] - p[1], currency="CNY", reference="", items=[
            OpenItem(str(i), Track.INVOICE, "CNY", inv[0] - inv[1]) for i, inv in enumerate(self.invoices)])
        if match is not None:
            self.apply("payment", payment, int(match.id), None)

    @property
    def balance(self) -> Decimal:
        return (sum((i[0] for i in self.invoices), D(0)) - sum((c[0] for c in self.credits), D(0))
                - sum((p[0] for p in self.payments), D(0)))


amounts = s.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
operations = s.lists(s.one_of(
    s.tuples(s.just("invoice"), amounts),
    s.tuples(s.just("credit"), amounts),
    s.tuples(s.just("payment"), amounts),
    s.tuples(s.just("allocate"), s.sampled_from(["payment", "credit"]), s.integers(0, 20), s.integers(0, 20),
             s.none() | amounts),
    s.tuples(s.just("auto"), s.integers(0, 20)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_allocations_never_exceed_and_balances_never_go_negative(ops: list[tuple]) -> None:
    ledger = Ledger()
    for op in ops:
        match op:
            case ("invoice", amount):
                ledger.invoices.append([amount, D(0)])
            case ("credit", amount):
                ledger.credits.append([amount, D(0)])
            case ("payment", amount):
                ledger.payments.append([amount, D(0)])
            case ("allocate", kind, source, target, requested):
                ledger.apply(kind, source, target, requested)
            case ("auto", payment):
                ledger.auto(payment)
        for total, allocated in ledger.invoices + ledger.credits + ledger.payments:
            assert D(0) <= allocated <= total  # never over-allocated, never a negative open balance
        for i, (amount, allocated) in enumerate(ledger.payments):
            assert sum((a for k, s_, _, a in ledger.allocations if k == "payment" and s_ == i), D(0)) == allocated
            assert allocated <= amount
    # The aging view (open invoices − unapplied credit − unallocated payments) is the ledger balance.
    items = [st.AgingItem("c", "CNY", t - a, DAY) for t, a in ledger.invoices if t > a]
    items += [st.AgingItem("c", "CNY", t - a, None) for t, a in ledger.credits + ledger.payments if t > a]
    _, sums = st.aging(items, DAY)
    assert (sums[0].total if sums else D(0)) == ledger.balance


documents = s.lists(s.tuples(s.sampled_from(list(st.DocumentKind)), amounts, s.integers(0, 89), s.booleans()),
                    max_size=30)


@settings(max_examples=200, deadline=None)
@given(documents, s.lists(s.integers(1, 60), min_size=1, max_size=4), s.integers(0, 89))
def test_statements_close_on_opening_plus_invoices_minus_payments_plus_adjustments(
        docs: list[tuple], period_lengths: list[int], cancel_after: int) -> None:
    """Successive statements of one customer: each closes on its own sum, each opens on the
    previous closing, and after the last one the closing balance is the ledger's balance of
    everything up to its end, cancellations included (corrections land in the next statement)."""
    start = dt.date(2026, 1, 1)
    ledger = [st.LedgerDocument(id=str(i), kind=k, number=f"D{i}", date=start + dt.timedelta(days=day), amount=a,
                                currency="CNY") for i, (k, a, day, _) in enumerate(docs)]
    cancellable = {str(i) for i, (k, _, _, c) in enumerate(docs) if c and k is not st.DocumentKind.PAYMENT}
    previous: Decimal | None = None
    period_start = start
    for n, length in enumerate(period_lengths):
        period_end = period_start + dt.timedelta(days=length)
        c = st.compose(ledger, currency="CNY", period_start=period_start, period_end=period_end,
                       previous_closing=previous)
        assert c.closing == c.opening + c.invoices - c.payments + c.adjustments
        assert c.payments >= 0
        if previous is not None:
            assert c.opening == previous
        # issue: what it showed is stated
        shown = {li.document_id for li in c.lines if li.kind is not st.LineKind.REVERSAL} | set(c.opening_document_ids)
        reversed_ = {li.document_id for li in c.lines if li.kind is st.LineKind.REVERSAL}
        ledger = [d if d.id not in shown and d.id not in reversed_ else st.LedgerDocument(
            **{**d.__dict__, "stated": d.stated or d.id in shown,
               "cancellation_stated": d.cancellation_stated or d.id in reversed_}) for d in ledger]
        if n == 0:  # after the first statement, some documents are cancelled
            ledger = [st.LedgerDocument(**{**d.__dict__, "cancelled": True}) if d.id in cancellable else d
                      for d in ledger]
        previous, period_start = c.closing, period_end + dt.timedelta(days=1)
    final = st.compose(ledger, currency="CNY", period_start=period_start, period_end=period_start,
                       previous_closing=previous)
    up_to = period_start
    expected = sum((d.signed for d in ledger if not d.cancelled and d.date <= up_to), D(0))
    assert final.closing == expected


def test_statement_lines_and_first_opening_balance() -> None:
    docs = [
        st.LedgerDocument("1", st.DocumentKind.INVOICE, "INV-1", dt.date(2026, 1, 20), D("1000.00"), "CNY"),
        st.LedgerDocument("2", st.DocumentKind.INVOICE, "INV-2", dt.date(2026, 2, 3), D("500.00"), "CNY"),
        st.LedgerDocument("3", st.DocumentKind.PAYMENT, "BANK-9", dt.date(2026, 2, 10), D("800.00"), "CNY"),
        st.LedgerDocument("4", st.DocumentKind.CREDIT_NOTE, "CN-1", dt.date(2026, 2, 12), D("50.00"), "CNY"),
        st.LedgerDocument("5", st.DocumentKind.INVOICE, "INV-3", dt.date(2026, 3, 2), D("70.00"), "CNY"),
        st.LedgerDocument("6", st.DocumentKind.INVOICE, "USD-1", dt.date(2026, 2, 3), D("9.00"), "USD"),
    ]
    c = st.compose(docs, currency="CNY", period_start=dt.date(2026, 2, 1), period_end=dt.date(2026, 2, 28),
                   previous_closing=None)
    assert c.opening == D("1000.00") and c.opening_document_ids == ("1",)
    assert [(li.kind, li.document_number, li.amount) for li in c.lines] == [
        (st.LineKind.INVOICE, "INV-2", D("500.00")), (st.LineKind.PAYMENT, "BANK-9", D("-800.00")),
        (st.LineKind.CREDIT_NOTE, "CN-1", D("-50.00"))]
    # 1000 + 500 − 800 − 50
    assert (c.invoices, c.payments, c.adjustments, c.closing) == (D("500.00"), D("800.00"), D("-50.00"),
                                                                  D("650.00"))


def test_statement_transitions() -> None:
    assert st.check_transition(st.StatementStatus.DRAFT, "issue") is st.StatementStatus.ISSUED
    assert st.check_transition(st.StatementStatus.ISSUED, "dispute") is st.StatementStatus.DISPUTED
    assert st.check_transition(st.StatementStatus.RESOLVED, "confirm") is st.StatementStatus.CONFIRMED
    with pytest.raises(Conflict) as again:
        st.check_transition(st.StatementStatus.ISSUED, "issue")
    assert again.value.reason == "STATEMENT_NOT_DRAFT"
    with pytest.raises(Conflict):
        st.check_transition(st.StatementStatus.DRAFT, "confirm")


# Aging (R-BIL-04) ------------------------------------------------------------------------------

def test_aging_buckets_and_totals_reconcile() -> None:
    as_of = dt.date(2026, 6, 30)
    assert [st.bucket_of(as_of - dt.timedelta(days=d), as_of) for d in (-1, 0, 30, 31, 60, 61, 90, 91)] == [
        "current", "days_0_30", "days_0_30", "days_31_60", "days_31_60", "days_61_90", "days_61_90",
        "days_over_90"]
    items = [st.AgingItem("li", "CNY", D("100.10"), as_of + dt.timedelta(days=5)),
             st.AgingItem("li", "CNY", D("200.20"), as_of - dt.timedelta(days=45)),
             st.AgingItem("li", "CNY", D("30.00"), None),
             st.AgingItem("wang", "CNY", D("999.99"), as_of - dt.timedelta(days=120)),
             st.AgingItem("wang", "USD", D("5.00"), as_of)]
    rows, sums = st.aging(items, as_of)
    assert [(r.key, r.currency, r.total) for r in rows] == [("wang", "CNY", D("999.99")), ("li", "CNY", D("270.30")),
                                                            ("wang", "USD", D("5.00"))]
    li = rows[1]
    assert (li.current, li.days_31_60, li.unapplied, li.open_invoices) == (D("100.10"), D("200.20"), D("30.00"), 2)
    cny = sums[0]
    assert (cny.currency, cny.total, cny.days_over_90, cny.open_invoices) == ("CNY", D("1270.29"), D("999.99"), 3)


def test_an_invoice_line_or_invoice_beyond_the_maximum_amount_is_refused() -> None:
    with pytest.raises(InvalidArgument) as product:
        parse_line(0, "valve", "999999999999999", "999999999999999", "13")
    assert product.value.violations[0].field == "lines[0].unit_price"
    line = price_line(parse_line(0, "valve", "1", "600000000000000", "0"))
    assert totals([line]).gross == D("600000000000000.00")
    with pytest.raises(InvalidArgument) as total:
        totals([line, line])
    assert total.value.violations[0].field == "lines"
