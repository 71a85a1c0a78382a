"""What the first migration seeds: the default pipeline and lost-reason list (R-OPP-01)."""

from __future__ import annotations

import uuid

DEFAULT_PIPELINE_ID = uuid.UUID("01930000-0000-7000-8000-000000000001")
DEFAULT_PIPELINE_NAME = "New business"
# (id suffix, name, default probability, is_won, is_lost)
DEFAULT_STAGES = [
    (11, "Qualification", 10, False, False),
    (12, "Needs analysis", 25, False, False),
    (13, "Proposal", 50, False, False),
    (14, "Negotiation", 75, False, False),
    (15, "Won", 100, True, False),
    (16, "Lost", 0, False, True),
]


def default_stage_id(suffix: int) -> uuid.UUID:
    return uuid.UUID(f"01930000-0000-7000-8000-0000000000{suffix:02d}")


DEFAULT_LOST_REASONS = [
    ("price", "Price too high"),
    ("competitor", "Lost to a competitor"),
    ("no_budget", "No budget"),
    ("no_decision", "No decision / project cancelled"),
    ("spec_not_feasible", "Specification not feasible"),
    ("lead_time", "Delivery lead time"),
    ("other", "Other"),
]
