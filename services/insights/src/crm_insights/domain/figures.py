"""The dashboard's arithmetic (R-DASH-01): which levels a data scope may look at, rates, and the
leaderboard's ranks. Pure; the sums come from the read models."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from crm_insights.domain.targets import Level
from crmkit.auth import DataScope, Principal
from crmkit.errors import PermissionDenied

ZERO = Decimal("0.00")

# Widest first: the default level is the first one a scope allows.
_LEVELS: dict[DataScope, tuple[Level, ...]] = {
    DataScope.ALL: (Level.COMPANY, Level.DEPARTMENT, Level.TEAM, Level.PERSON),
    DataScope.DEPARTMENT: (Level.DEPARTMENT, Level.TEAM, Level.PERSON),
    DataScope.TEAM: (Level.TEAM, Level.PERSON),
    DataScope.OWN: (Level.PERSON,),
    # Finance sees every customer with a signed contract: the company's money, nobody's own.
    DataScope.SIGNED: (Level.COMPANY,),
}


def dashboard_level(principal: Principal, asked: Level | None) -> Level:
    """The level asked for, if the caller's data scope reaches it; unasked, the widest it does."""
    allowed = _LEVELS[principal.data_scope]
    if asked is None:
        return allowed[0]
    if asked not in allowed:
        raise PermissionDenied(f"the {asked} level is outside your data scope (you may see: "
                               f"{', '.join(level.value for level in allowed)})",
                               reason="LEVEL_OUT_OF_SCOPE", metadata={"level": asked.value})
    return asked


def rate(numerator: Decimal, denominator: Decimal | None) -> Decimal | None:
    """numerator ÷ denominator in percent, two decimals; None when there is nothing to divide by."""
    if not denominator:
        return None
    return (numerator * 100 / denominator).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class PersonFigures:
    person_id: str
    signed: Decimal = ZERO
    collected: Decimal = ZERO
    new_customers: int = 0


@dataclass(frozen=True)
class Ranked:
    figures: PersonFigures
    rank: int
    previous_rank: int = 0


@dataclass
class Leaderboard:
    entries: list[Ranked] = field(default_factory=list)


def _ordered(people: Iterable[PersonFigures]) -> list[PersonFigures]:
    return sorted(people, key=lambda p: (-p.signed, -p.collected, -p.new_customers, p.person_id))


def ranks(people: Iterable[PersonFigures]) -> dict[str, int]:
    """Competition ranks by signed amount, then collected, then new customers: equal figures share a
    rank and the next rank skips (1, 1, 3)."""
    ranked: dict[str, int] = {}
    previous_key: tuple[Decimal, Decimal, int] | None = None
    rank = 0
    for position, person in enumerate(_ordered(people), start=1):
        key = (person.signed, person.collected, person.new_customers)
        if key != previous_key:
            rank, previous_key = position, key
        ranked[person.person_id] = rank
    return ranked


def leaderboard(current: Iterable[PersonFigures], previous: Iterable[PersonFigures]) -> Leaderboard:
    """This period's ranking, each line with the person's rank the period before (0: not ranked)."""
    people = _ordered(current)
    now, before = ranks(people), ranks(previous)
    return Leaderboard([Ranked(p, now[p.person_id], before.get(p.person_id, 0)) for p in people])
