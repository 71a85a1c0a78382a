"""The unit of work and the data-scope SQL against a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, Text, select, text

from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.outbox.schema import outbox
from crmkit.scopes import scope_clause
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, EAST_REP_2, WEST_REP

pytestmark = pytest.mark.integration

records = Table("scoped_records", MetaData(), Column("name", Text, primary_key=True),
                Column("owner_id", Text), Column("team_id", Text), Column("department_path", Text))

ROWS = [
    ("east-1", "rep-east", "east", "/sales/east/"),
    ("east-2", "rep-east-2", "east", "/sales/east/"),
    ("west-1", "rep-west", "west", "/sales/west/"),
    ("ops-1", "ops-lead", "ops", "/operations/"),
    ("salesforce-1", "sf", "", "/salesforce/"),       # a prefix of the name, not of the path
    ("director-own", "director", "", "/operations/"),  # outside the department, but their own
    ("odd-1", "odd", "", "/sa_es/"),
]
ODD = Principal(subject="nobody", department_path="/sa_es/", data_scope=DataScope.DEPARTMENT)
TEAMLESS_MANAGER = Principal(subject="rep-west", data_scope=DataScope.TEAM)

VISIBLE = [
    (ADMIN, {r[0] for r in ROWS}),
    (DIRECTOR, {"east-1", "east-2", "west-1", "director-own"}),
    (EAST_MANAGER, {"east-1", "east-2"}),
    (EAST_REP, {"east-1"}),
    (EAST_REP_2, {"east-2"}),
    (WEST_REP, {"west-1"}),
    (TEAMLESS_MANAGER, {"west-1"}),
    (ODD, {"odd-1"}),  # '_' in the path is not a wildcard: /sales/ stays hidden
]


@pytest.mark.parametrize(("principal", "expected"), VISIBLE, ids=[p.subject for p, _ in VISIBLE])
async def test_scope_clause_selects_exactly_the_records_in_scope(
    sessions: Any, principal: Principal, expected: set[str],
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(records.insert(), [dict(zip(("name", "owner_id", "team_id", "department_path"),
                                                           row, strict=True)) for row in ROWS])
    clause = scope_clause(principal, owner=records.c.owner_id, team=records.c.team_id,
                          department_path=records.c.department_path)
    async with sessions() as session:
        names = set((await session.execute(select(records.c.name).where(clause))).scalars())
    assert names == expected


async def test_unit_of_work_commits_the_change_and_its_events_together(sessions: Any, topic: Any) -> None:
    widget = uuid.uuid4()
    async with UnitOfWork(sessions, "crm/kt", actor="u-alice") as uow:
        await uow.session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, 'w')"), {"id": widget})
        uow.emit(topic.event(thing_id="a"), subject_id=str(widget))
        uow.emit(topic.event(thing_id="b"))
        # nothing is written before commit
        assert (await uow.session.execute(select(outbox.c.id))).first() is None
        await uow.commit()
    async with sessions() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
        assert (await session.execute(text("SELECT count(*) FROM widgets"))).scalar_one() == 1
    assert [r["subject"] for r in rows] == [topic.subject] * 2
    assert [r["type"] for r in rows] == [topic.event.DESCRIPTOR.full_name] * 2
    assert rows[0]["headers"]["ce-subject"] == str(widget) and "ce-subject" not in rows[1]["headers"]
    assert all(r["headers"]["ce-id"] == str(r["event_id"]) for r in rows)
    assert all(r["headers"]["ce-actor"] == "u-alice" and r["published_at"] is None for r in rows)
    assert rows[0]["event_id"] < rows[1]["event_id"]  # UUIDv7: time-ordered
    payload = topic.event()
    payload.ParseFromString(rows[1]["payload"])
    assert payload.thing_id == "b"


async def test_a_failed_commit_leaves_no_change_and_no_event(sessions: Any, topic: Any) -> None:
    widget = uuid.uuid4()
    async with sessions() as session, session.begin():
        await session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, 'first')"), {"id": widget})
    with pytest.raises(Exception, match="duplicate key"):
        async with UnitOfWork(sessions, "crm/kt") as uow:
            uow.emit(topic.event(thing_id="x"))
            await uow.session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, 'again')"),
                                      {"id": widget})
            await uow.commit()
    async with sessions() as session:
        assert (await session.execute(select(outbox.c.id))).first() is None
        assert (await session.execute(text("SELECT name FROM widgets"))).scalars().all() == ["first"]
