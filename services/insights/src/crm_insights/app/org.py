"""Where people and teams sit in the org chart: asked of identity when a target is set, so that a
manager's data scope decides whose targets they may set."""

from __future__ import annotations

from typing import Protocol

from crm_insights.domain.targets import Place


class OrgChart(Protocol):
    async def person(self, user_id: str) -> Place | None:
        """The person's id, (first) team and department path; None if there is no such person."""

    async def team(self, team_id: str) -> Place | None:
        """The team's id and its department's path; None if there is no such team."""
