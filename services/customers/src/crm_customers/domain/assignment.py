"""Lead assignment rules (R-LEAD-01): which rule applies to a lead, and whom it goes to.

Pure: the adapters lock a rule's cursor row and each candidate's rolling count in PostgreSQL
(so concurrent requests see each other's choices) and feed them in here.

Round-robin within the rule's pool: the rule keeps a cursor (how many leads it has handed out);
the next lead goes to the first person from position `cursor % len(pool)` onwards who is under
the capacity cap. With nobody capped a pool of n people gets leads in strict rotation, so any
run of assignments differs by at most one lead between two people. A capped person is skipped
(the rotation moves on past them); when everyone is capped the lead stays unassigned.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from crm_customers.domain.model import _Problems
from crm_customers.domain.text import clean

MAX_POOL = 200
MAX_CAP_DAYS = 365


@dataclass(frozen=True)
class Rule:
    id: uuid.UUID
    name: str
    user_ids: tuple[str, ...]
    priority: int = 100
    regions: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    team_id: str = ""
    department_path: str = "/"
    cap_count: int = 0
    cap_days: int = 7
    active: bool = True
    cursor: int = 0
    version: int = 1

    def matches(self, *, region: str, industry: str) -> bool:
        """Empty conditions match anything; regions compare case-insensitively, industries by code."""
        if not self.active:
            return False
        if self.regions and region.casefold() not in {r.casefold() for r in self.regions}:
            return False
        return not (self.industries and industry not in self.industries)


def normalise_rule(rule: Rule) -> Rule:
    problems = _Problems()
    name = clean(rule.name)
    if not name or len(name) > 100:
        problems.add("name", "is required, at most 100 characters")
    users = tuple(dict.fromkeys(u for u in (clean(u) for u in rule.user_ids) if u))
    if not users:
        problems.add("user_ids", "at least one person")
    if len(users) > MAX_POOL:
        problems.add("user_ids", f"at most {MAX_POOL} people")
    if rule.cap_count < 0:
        problems.add("cap_count", "must not be negative (0: no cap)")
    if not 1 <= rule.cap_days <= MAX_CAP_DAYS:
        problems.add("cap_days", f"must be 1..{MAX_CAP_DAYS}")
    if not -1_000_000 <= rule.priority <= 1_000_000:
        problems.add("priority", "out of range")
    department = clean(rule.department_path) or "/"
    if not department.startswith("/"):
        problems.add("department_path", "must start with /")
    problems.raise_if_any("the assignment rule")
    return replace(rule, name=name, user_ids=users, department_path=department,
                   regions=tuple(dict.fromkeys(r for r in (clean(r) for r in rule.regions) if r)),
                   industries=tuple(dict.fromkeys(i for i in (clean(i).lower() for i in rule.industries) if i)),
                   team_id=clean(rule.team_id))


def matching(rules: Sequence[Rule], *, region: str, industry: str) -> list[Rule]:
    """The active rules a lead matches, in the order they are tried (priority, then id)."""
    return sorted((r for r in rules if r.matches(region=region, industry=industry)),
                  key=lambda r: (r.priority, str(r.id)))


@dataclass
class Pick:
    """The outcome of choosing for one lead."""

    owner_id: str = ""
    rule: Rule | None = None
    reason: str = ""


@dataclass
class Pool:
    """A rule's live state while a transaction holds its lock: the cursor, and the rolling count
    (assignments in the rule's last cap_days, by every rule) of each person in its pool."""

    rule: Rule
    cursor: int
    loads: dict[str, int] = field(default_factory=dict)

    def take(self) -> str | None:
        """The next person in rotation under the cap, or None when everyone is capped. Advances
        the cursor past whoever was chosen and counts the lead against them."""
        people = self.rule.user_ids
        for step in range(len(people)):
            position = (self.cursor + step) % len(people)
            person = people[position]
            if self.rule.cap_count and self.loads.get(person, 0) >= self.rule.cap_count:
                continue
            self.cursor = self.cursor + step + 1
            self.loads[person] = self.loads.get(person, 0) + 1
            return person
        return None


def choose(pools: Mapping[uuid.UUID, Pool], candidates: Sequence[Rule]) -> Pick:
    """Tries the lead's matching rules in order; the first with someone under the cap assigns."""
    if not candidates:
        return Pick(reason="no assignment rule matches the lead")
    for rule in candidates:
        person = pools[rule.id].take()
        if person is not None:
            # A cap counts a person's leads from every rule: the other pools see this one too.
            for other in pools.values():
                if other.rule.id != rule.id and person in other.loads:
                    other.loads[person] += 1
            return Pick(owner_id=person, rule=rule)
    names = ", ".join(repr(r.name) for r in candidates)
    return Pick(reason=f"everyone eligible is at capacity (rules {names})")
