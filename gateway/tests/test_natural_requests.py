"""Requests read naturally (issue 22): an action needs no `{}` and a missing field is named,
"<field> is required", never "body: Field required"."""

from __future__ import annotations

import uuid

import pytest

from crmkit.testing.principals import EAST_MANAGER, EAST_REP, with_grants

pytestmark = pytest.mark.integration


async def test_a_missing_body_names_the_fields_it_must_have(client, auth, assert_problem):
    r = await client.post(f"/api/v1/opportunities/{uuid.uuid4()}/lost", headers=auth(with_grants(EAST_REP)))
    body = assert_problem(r, 422, reason="INVALID_ARGUMENT")
    assert body["errors"] == [{"field": "reason", "message": "is required"}]
    assert body["detail"] == "the request is not valid: reason is required"


async def test_a_missing_field_reads_is_required(client, auth, assert_problem):
    r = await client.post("/api/v1/customers", headers=auth(with_grants(EAST_REP)), json={"region": "East China"})
    body = assert_problem(r, 422, reason="INVALID_ARGUMENT")
    assert {"field": "name", "message": "is required"} in body["errors"]
    assert "name is required" in body["detail"] and "Field required" not in body["detail"]


async def test_rejecting_without_a_body_reaches_the_service(client, auth, assert_problem):
    """No `body: Field required` at the gateway: the service decides (for a pending step it answers
    422 with a violation on `reason`; this step does not exist, so 404)."""
    for decision in ("reject", "return"):
        step = uuid.uuid4()
        r = await client.post(f"/api/v1/approvals/{step}/{decision}", headers=auth(with_grants(EAST_MANAGER)))
        assert_problem(r, 404, reason="NOT_FOUND", detail_mentions=(str(step),))
