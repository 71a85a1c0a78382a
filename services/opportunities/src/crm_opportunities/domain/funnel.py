"""Funnel maths (R-OPP-04): conversion between stages and time in stage, from aggregates."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

TENTH = Decimal("0.1")


def conversion_percent(reached_from: int, reached_to: int) -> Decimal | None:
    """Share of the opportunities that reached a stage which went on to the next one, in percent
    with one decimal; None when none reached the stage (no rate, rather than a made-up 0)."""
    if reached_from <= 0:
        return None
    return (Decimal(100) * reached_to / reached_from).quantize(TENTH, rounding=ROUND_HALF_UP)


def average_days(total_seconds: float | Decimal | None, stays: int) -> Decimal | None:
    if not stays or total_seconds is None:
        return None
    return (Decimal(str(total_seconds)) / stays / 86400).quantize(TENTH, rounding=ROUND_HALF_UP)


def conversions(stages: list[tuple[int, bool, bool, int]]) -> list[Decimal | None]:
    """For stages (order, is_won, is_lost, reached) sorted by order: the conversion of each open
    stage to the next non-lost stage; None for terminal stages."""
    path = [s for s in stages if not s[2]]
    out: list[Decimal | None] = []
    for order, won, lost, reached in stages:
        if won or lost:
            out.append(None)
            continue
        following = [s for s in path if s[0] > order]
        out.append(conversion_percent(reached, following[0][3]) if following else None)
    return out
