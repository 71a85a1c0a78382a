"""The customers use cases against a real PostgreSQL (R-CUS-01/02/04/05, R-SEC-02, R-UX-01).

Every mutation is checked for the outbox rows it writes (subject, type, actor, payload) and every
failure for leaving nothing behind: no record, no tag, no event.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, text

from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters import sensitive
from crm_customers.adapters.tables import customers as customers_table
from crm_customers.app import use_cases as uc
from crm_customers.domain.model import (
    Address,
    AddressKind,
    Customer,
    CustomerStatus,
    FollowUpKind,
    LifecycleStage,
    Origin,
)
from crmkit.errors import AlreadyExists, CrmError, InvalidArgument, NotFound, PermissionDenied, StaleVersion
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, EAST_REP_2, WEST_REP

pytestmark = pytest.mark.integration

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc(n: int) -> str:
    """A valid unified social credit code, different for each n (GB 32100-2015)."""
    prefix = f"913501{n:011d}"
    total = sum(ALPHABET.index(c) * w for c, w in zip(prefix, WEIGHTS, strict=True))
    return prefix + ALPHABET[(31 - total % 31) % 31]


TAX = uscc(1)
NOW = dt.datetime.now(dt.UTC)


def sealed_tax_id(tax_id: str) -> dict[str, Any]:
    """The tax ID columns as the service writes them (sealed, with the blind index)."""
    return {"tax_id": sensitive.seal(tax_id, sensitive.TAX_ID), "tax_id_index": sensitive.tax_id_index(tax_id)}


def fields_of(violations: Any) -> set[str]:
    return {v.field for v in violations}


async def new_customer(call, principal=EAST_REP, **fields: Any) -> Customer:
    return await call(principal, uc.create_customer, {"name": "Acme", **fields})


# Create ------------------------------------------------------------------------------

async def test_create_fills_defaults_from_the_caller(call, outbox) -> None:
    # R-UX-01: only the name is typed; owner, team, department and lifecycle default.
    c = await call(EAST_REP, uc.create_customer, {"name": "  ＡＣＭＥ  Medical "})
    assert c.name == "ACME Medical"
    assert (c.owner_id, c.team_id, c.department_path, c.created_by) == ("rep-east", "east", "/sales/east/",
                                                                        "rep-east")
    assert (c.lifecycle_stage, c.status, c.origin) == (LifecycleStage.PROSPECT, CustomerStatus.ACTIVE,
                                                       Origin.DOMESTIC)
    assert c.version == 1 and c.created_at is not None and c.updated_at is not None
    assert await call(EAST_REP, uc.get_customer, c.id) == c

    [row] = await outbox()
    assert row.subject == "crm.customers.customer.created"
    assert row.type == "crm.customers.v1.CustomerCreated"
    assert row.headers["ce-actor"] == "rep-east"
    assert row.headers["ce-subject"] == str(c.id)
    assert row.headers["ce-source"] == "crm/customers"
    assert row.headers["ce-id"] == row.headers["Nats-Msg-Id"]
    msg = row.message()
    assert isinstance(msg, ev.CustomerCreated)
    assert (msg.customer.id, msg.customer.name, msg.customer.owner_id, msg.customer.team_id,
            msg.customer.version) == (str(c.id), "ACME Medical", "rep-east", "east", 1)


async def test_create_by_a_director_without_a_team(call) -> None:
    c = await new_customer(call, DIRECTOR)
    assert (c.owner_id, c.team_id, c.department_path) == ("director", "", "/sales/")


async def test_create_with_every_field_round_trips(call) -> None:
    c = await new_customer(
        call, name="Fuzhou Medical", tax_id=TAX.lower(), industry="medical_devices", region="Fujian",
        status=CustomerStatus.CHANGED, lifecycle_stage=LifecycleStage.CUSTOMER, tags=("VIP", "vip", "export"),
        addresses=(Address(kind=AddressKind.REGISTERED, line="1 Gutian Rd", city="Fuzhou", country="cn"),))
    assert c.tax_id == TAX
    assert c.tags == ("export", "VIP")
    assert c.addresses[0].country == "CN"
    got = await call(EAST_REP, uc.get_customer, c.id)
    assert got == c


async def test_create_foreign_customer(call) -> None:
    c = await new_customer(call, origin=Origin.FOREIGN, tax_id="de 123456789")
    assert (c.origin, c.tax_id) == (Origin.FOREIGN, "DE 123456789")


async def test_invalid_create_reports_everything_and_writes_nothing(call, counts) -> None:
    before = await counts()
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, uc.create_customer, {"name": "", "tax_id": TAX[:17] + "0", "tags": ("",)})
    assert fields_of(exc.value.violations) == {"name", "tax_id", "tags"}
    assert await counts() == before


async def test_unknown_industry_is_invalid_argument(call, counts) -> None:
    before = await counts()
    with pytest.raises(InvalidArgument) as exc:
        await new_customer(call, industry="space_mining")
    assert fields_of(exc.value.violations) == {"industry"}
    assert await counts() == before


async def test_assignment_out_of_scope_is_permission_denied(call, counts) -> None:
    before = await counts()
    for principal, fields in [(EAST_REP, {"owner_id": "rep-east-2"}), (EAST_REP, {"team_id": "west"}),
                              (EAST_MANAGER, {"owner_id": "rep-west", "team_id": "west"})]:
        with pytest.raises(PermissionDenied) as exc:
            await new_customer(call, principal, **fields)
        assert exc.value.reason == "ASSIGNMENT_OUT_OF_SCOPE"
    assert await counts() == before
    # A director assigns anyone within the department (the record keeps the director's path).
    c = await new_customer(call, DIRECTOR, owner_id="rep-west", team_id="west")
    assert (c.owner_id, c.team_id, c.department_path) == ("rep-west", "west", "/sales/")
    assert (await call(WEST_REP, uc.get_customer, c.id)).id == c.id


async def test_manager_assigns_to_a_rep_of_the_team(call) -> None:
    c = await new_customer(call, EAST_MANAGER, owner_id="rep-east")
    assert (c.owner_id, c.team_id) == ("rep-east", "east")
    assert (await call(EAST_REP, uc.get_customer, c.id)).id == c.id


# Duplicate tax IDs -------------------------------------------------------------------

async def test_duplicate_tax_id_names_the_holder_when_visible(call, counts) -> None:
    first = await new_customer(call, name="First", tax_id=TAX)
    before = await counts()
    for principal in (EAST_REP, EAST_MANAGER, DIRECTOR, ADMIN):
        with pytest.raises(AlreadyExists) as exc:
            # Typed differently: lower case, spaces, full width; still the same code.
            await new_customer(call, principal, name="Second", tax_id=" ".join(TAX.lower()))
        assert exc.value.reason == "DUPLICATE_TAX_ID"
        assert exc.value.metadata == {"existing_customer_id": str(first.id), "existing_customer_name": "First"}
        assert "First" in exc.value.message and str(first.id) in exc.value.message
    assert await counts() == before


@pytest.mark.parametrize("principal", [WEST_REP, EAST_REP_2])
async def test_duplicate_tax_id_leaks_nothing_when_not_visible(call, counts, principal) -> None:
    first = await new_customer(call, name="Secret Holder Co", tax_id=TAX)
    before = await counts()
    with pytest.raises(AlreadyExists) as exc:
        await new_customer(call, principal, name="Mine", tax_id=TAX)
    assert exc.value.reason == "DUPLICATE_TAX_ID"
    assert exc.value.metadata == {}
    assert "Secret" not in exc.value.message and str(first.id) not in exc.value.message
    assert await counts() == before


async def test_deleted_customer_frees_its_tax_id(call) -> None:
    first = await new_customer(call, tax_id=TAX)
    await call(EAST_REP, uc.delete_customer, first.id, 1)
    second = await new_customer(call, WEST_REP, tax_id=TAX)
    assert second.tax_id == TAX


async def test_concurrent_creates_of_one_tax_id(call, outbox, sessions) -> None:
    # R-CUS-01 under a race: exactly one wins, the other is told it is a duplicate, never a 500.
    for n in range(5):
        tax_id = uscc(100 + n)
        results = await asyncio.gather(
            new_customer(call, EAST_REP, name=f"A{n}", tax_id=tax_id),
            new_customer(call, WEST_REP if n % 2 else EAST_MANAGER, name=f"B{n}", tax_id=tax_id),
            return_exceptions=True)
        winners = [r for r in results if isinstance(r, Customer)]
        losers = [r for r in results if not isinstance(r, Customer)]
        assert len(winners) == 1, results
        assert len(losers) == 1 and isinstance(losers[0], AlreadyExists), results
        assert losers[0].reason == "DUPLICATE_TAX_ID"
    assert len(await outbox()) == 5
    async with sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM customers")) == 5


async def _wait_for_lock_wait(sessions, racer: asyncio.Task[Any]) -> None:
    """Polls until some backend of this database waits on a lock (bounded, not a fixed sleep)."""
    async with sessions() as s:
        for _ in range(1000):
            if racer.done():
                raise AssertionError(f"the racing transaction finished without blocking: {racer.result()!r}")
            waiting = await s.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))
            if waiting:
                return
            await s.rollback()  # pg_stat_activity is a snapshot per transaction: take a new one
            await asyncio.sleep(0.01)
    raise AssertionError("the racing transaction never blocked")


async def test_create_losing_the_race_after_its_check_is_a_duplicate(call, sessions, outbox, counts) -> None:
    # Deterministic version of the race: another transaction holds an uncommitted row with the tax
    # ID, so the duplicate check passes, the insert blocks, then fails on the unique index.
    async with sessions() as blocker, blocker.begin():
        await blocker.execute(insert(customers_table).values(
            id=uuid.uuid4(), name="Holder", **sealed_tax_id(TAX), origin="domestic", status="active",
            lifecycle_stage="prospect", owner_id="rep-east", team_id="east", department_path="/sales/east/",
            version=1))
        racer = asyncio.create_task(new_customer(call, WEST_REP, name="Racer", tax_id=TAX))
        await _wait_for_lock_wait(sessions, racer)
    with pytest.raises(AlreadyExists) as exc:
        await racer
    assert exc.value.reason == "DUPLICATE_TAX_ID"
    assert exc.value.metadata == {} and "Holder" not in exc.value.message
    assert (await counts())["customers"] == 1
    assert await outbox() == []


async def test_concurrent_updates_to_one_tax_id(call, counts) -> None:
    a = await new_customer(call, name="A")
    b = await new_customer(call, name="B")
    before = await counts()
    results = await asyncio.gather(
        call(EAST_REP, uc.update_customer, a.id, {"tax_id": TAX}, ["tax_id"], 0),
        call(EAST_REP, uc.update_customer, b.id, {"tax_id": TAX}, ["tax_id"], 0),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AlreadyExists", "Customer"], results
    assert (await counts())["outbox"] == before["outbox"] + 1


async def test_update_losing_the_race_after_its_check_is_a_duplicate(call, sessions, counts) -> None:
    a = await new_customer(call, name="A")
    before = await counts()
    async with sessions() as blocker, blocker.begin():
        await blocker.execute(insert(customers_table).values(
            id=uuid.uuid4(), name="Holder", **sealed_tax_id(TAX), origin="domestic", status="active",
            lifecycle_stage="prospect", owner_id="rep-west", team_id="west", department_path="/sales/west/",
            version=1))
        racer = asyncio.create_task(call(EAST_REP, uc.update_customer, a.id, {"tax_id": TAX}, ["tax_id"], 1))
        await _wait_for_lock_wait(sessions, racer)
    with pytest.raises(AlreadyExists) as exc:
        await racer
    assert exc.value.reason == "DUPLICATE_TAX_ID" and exc.value.metadata == {}
    assert (await call(EAST_REP, uc.get_customer, a.id)) == a
    after = await counts()
    assert after["outbox"] == before["outbox"]


# Get, update, delete -------------------------------------------------------------------

async def test_get_unknown_is_not_found(call) -> None:
    with pytest.raises(NotFound):
        await call(ADMIN, uc.get_customer, uuid.uuid4())


async def test_update_with_mask_and_version(call, outbox) -> None:
    c = await new_customer(call, tags=("a",))
    updated = await call(EAST_REP, uc.update_customer, c.id,
                         {"name": " Acme Ltd ", "region": "IGNORED: not in the mask", "tags": ("b", "A")},
                         ["name", "tags"], 1)
    assert (updated.name, updated.region, updated.tags, updated.version) == ("Acme Ltd", "", ("A", "b"), 2)
    assert updated.updated_at > c.updated_at and updated.created_at == c.created_at
    assert await call(EAST_REP, uc.get_customer, c.id) == updated

    created, row = await outbox()
    assert created.type == "crm.customers.v1.CustomerCreated"
    assert (row.subject, row.type) == ("crm.customers.customer.updated", "crm.customers.v1.CustomerUpdated")
    assert row.headers["ce-actor"] == "rep-east" and row.headers["ce-subject"] == str(c.id)
    msg = row.message()
    assert list(msg.changed_fields) == ["name", "tags"]
    assert (msg.before.name, list(msg.before.tags), msg.before.version) == ("Acme", ["a"], 1)
    assert (msg.after.name, list(msg.after.tags), msg.after.version) == ("Acme Ltd", ["A", "b"], 2)


async def test_update_without_expected_version_applies(call) -> None:
    c = await new_customer(call)
    assert (await call(EAST_REP, uc.update_customer, c.id, {"region": "East"}, ["region"], 0)).version == 2


async def test_stale_version_changes_nothing(call, counts) -> None:
    c = await new_customer(call)
    await call(EAST_REP, uc.update_customer, c.id, {"name": "v2"}, ["name"], 1)
    before = await counts()
    with pytest.raises(StaleVersion) as exc:
        await call(EAST_REP, uc.update_customer, c.id, {"name": "v3"}, ["name"], 1)
    assert exc.value.reason == "STALE_VERSION" and exc.value.metadata == {"current_version": "2"}
    with pytest.raises(StaleVersion):
        await call(EAST_REP, uc.delete_customer, c.id, 1)
    assert await counts() == before
    assert (await call(EAST_REP, uc.get_customer, c.id)).name == "v2"


async def test_no_op_update_emits_nothing(call, counts) -> None:
    c = await new_customer(call, tags=("x", "Y"))
    before = await counts()
    for fields, mask in [
        ({"name": " Acme "}, ["name"]),
        ({"tags": ("Y", "x")}, ["tags"]),  # the same set in another order (R-CUS-04)
        ({"tags": ("x", "Y", "y", " X ")}, ["tags"]),  # duplicates folded into the same set
        ({"name": "Acme", "region": ""}, ["name", "region"]),
        ({"owner_id": "rep-east", "team_id": "east"}, ["owner_id", "team_id"]),
    ]:
        assert await call(EAST_REP, uc.update_customer, c.id, fields, mask, 1) == c
    assert await counts() == before


async def test_bad_update_mask(call, counts) -> None:
    c = await new_customer(call)
    before = await counts()
    for mask in (["name", "version"], ["id"], ["department_path"], ["created_by"], ["customer.name"]):
        with pytest.raises(InvalidArgument) as exc:
            await call(EAST_REP, uc.update_customer, c.id, {"name": "x", "version": 9, "id": "x"}, mask, 1)
        assert fields_of(exc.value.violations) == {"update_mask"}, mask
    assert await counts() == before


async def test_an_empty_update_changes_nothing_but_still_checks_the_version(call, outbox) -> None:
    # A JSON merge patch of {} is valid and a no-op; a stale If-Match is still refused.
    c = await new_customer(call)
    emitted = len(await outbox())
    assert await call(EAST_REP, uc.update_customer, c.id, {}, [], 1) == c
    with pytest.raises(StaleVersion):
        await call(EAST_REP, uc.update_customer, c.id, {}, [], 7)
    assert len(await outbox()) == emitted


async def test_invalid_update_writes_nothing(call, counts) -> None:
    c = await new_customer(call)
    before = await counts()
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, uc.update_customer, c.id, {"name": "", "tags": ("t" * 51,)}, ["name", "tags"], 1)
    assert fields_of(exc.value.violations) == {"name", "tags"}
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, uc.update_customer, c.id, {"industry": "nope"}, ["industry"], 1)
    assert fields_of(exc.value.violations) == {"industry"}
    assert await counts() == before
    assert await call(EAST_REP, uc.get_customer, c.id) == c


async def test_update_to_a_duplicate_tax_id(call, counts) -> None:
    await new_customer(call, name="Holder", tax_id=TAX)
    other = await new_customer(call, name="Other")
    before = await counts()
    with pytest.raises(AlreadyExists) as exc:
        await call(EAST_REP, uc.update_customer, other.id, {"tax_id": TAX}, ["tax_id"], 1)
    assert exc.value.reason == "DUPLICATE_TAX_ID" and exc.value.metadata["existing_customer_name"] == "Holder"
    assert await counts() == before


async def test_rep_may_not_hand_a_customer_to_someone_else(call, counts) -> None:
    c = await new_customer(call)
    before = await counts()
    for fields, mask in [({"owner_id": "rep-east-2"}, ["owner_id"]), ({"team_id": "west"}, ["team_id"]),
                         ({"owner_id": "rep-west", "team_id": "west"}, ["owner_id", "team_id"])]:
        with pytest.raises(PermissionDenied) as exc:
            await call(EAST_REP, uc.update_customer, c.id, fields, mask, 1)
        assert exc.value.reason == "ASSIGNMENT_OUT_OF_SCOPE"
    assert await counts() == before


async def test_manager_reassigns_within_the_team(call, outbox) -> None:
    c = await new_customer(call)
    moved = await call(EAST_MANAGER, uc.update_customer, c.id, {"owner_id": "rep-east-2"}, ["owner_id"], 1)
    assert moved.owner_id == "rep-east-2"
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_customer, c.id)
    assert (await call(EAST_REP_2, uc.get_customer, c.id)).version == 2
    row = (await outbox())[-1]
    assert row.headers["ce-actor"] == "mgr-east"
    assert list(row.message().changed_fields) == ["owner_id"]
    with pytest.raises(PermissionDenied):
        await call(EAST_MANAGER, uc.update_customer, c.id, {"owner_id": "rep-west", "team_id": "west"},
                   ["owner_id", "team_id"], 2)


async def test_delete_hides_the_customer(call, outbox, counts) -> None:
    c = await new_customer(call, tags=("gone",))
    kept = await new_customer(call, name="Kept")
    await call(EAST_REP, uc.delete_customer, c.id, 1)
    for principal in (EAST_REP, ADMIN):
        with pytest.raises(NotFound):
            await call(principal, uc.get_customer, c.id)
        items, _ = await call(principal, uc.list_customers, page_token="", limit=0, order_by="")
        assert [i.id for i in items] == [kept.id]
        assert await call(principal, uc.list_tags) == []
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.update_customer, c.id, {"name": "x"}, ["name"], 0)
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.add_contact, c.id, {"name": "x"})
    before = await counts()
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.delete_customer, c.id, 0)
    assert await counts() == before
    row = (await outbox())[-1]
    assert (row.subject, row.type) == ("crm.customers.customer.deleted", "crm.customers.v1.CustomerDeleted")
    assert row.headers["ce-actor"] == "rep-east" and row.message().customer.id == str(c.id)
    assert (await counts())["outbox"] == 3


# List --------------------------------------------------------------------------------

async def list_all(call, principal=EAST_REP, *, limit: int = 0, order_by: str = "", **filters: str) -> list[Customer]:
    items, token = await call(principal, uc.list_customers, page_token="", limit=limit or 200, order_by=order_by,
                              **filters)
    assert token == ""
    return items


async def test_filters(call) -> None:
    a = await new_customer(call, name="Fuzhou MEDICAL Devices", industry="medical_devices", tags=("VIP",))
    b = await new_customer(call, name="Xiamen medical 100%_pure", industry="plastics", tags=("vip", "export"))
    c = await new_customer(call, EAST_MANAGER, name="Shanghai Steel", industry="metals", owner_id="rep-east-2")

    def ids(items: list[Customer]) -> set[uuid.UUID]:
        return {i.id for i in items}

    assert ids(await list_all(call, EAST_MANAGER, name_contains="medical")) == {a.id, b.id}
    assert ids(await list_all(call, EAST_MANAGER, name_contains="MeDiCaL dev")) == {a.id}
    assert ids(await list_all(call, EAST_MANAGER, name_contains="100%_")) == {b.id}
    assert ids(await list_all(call, EAST_MANAGER, name_contains="%")) == {b.id}
    assert ids(await list_all(call, EAST_MANAGER, name_contains="_")) == {b.id}
    assert ids(await list_all(call, EAST_MANAGER, industry="metals")) == {c.id}
    assert ids(await list_all(call, EAST_MANAGER, owner_id="rep-east-2")) == {c.id}
    assert ids(await list_all(call, EAST_MANAGER, owner_id="rep-east")) == {a.id, b.id}
    assert ids(await list_all(call, EAST_MANAGER, tag="export")) == {b.id}
    # Tags compare without case: "VIP" and "vip" are one tag.
    assert ids(await list_all(call, EAST_MANAGER, tag="VIP")) == {a.id, b.id}
    assert ids(await list_all(call, EAST_MANAGER, tag="Export")) == {b.id}
    assert ids(await list_all(call, EAST_MANAGER, team_id="east")) == {a.id, b.id, c.id}
    assert ids(await list_all(call, EAST_MANAGER, name_contains="medical", industry="plastics")) == {b.id}
    # Filters never widen the scope.
    assert ids(await list_all(call, EAST_REP, owner_id="rep-east-2")) == set()
    assert ids(await list_all(call, WEST_REP, name_contains="medical")) == set()


SORTS = {
    "name": lambda c: (c.name, c.id),
    "create_time": lambda c: (c.created_at, c.id),
    "update_time": lambda c: (c.updated_at, c.id),
}


async def _populate_for_sorting(call) -> list[Customer]:
    names = ["mango", "same", "apple", "same", "zebra", "same", "kiwi", "same", "banana"]
    made = [await new_customer(call, name=n) for n in names]
    # Touch some so update order differs from create order.
    for c in (made[4], made[0], made[7]):
        await call(EAST_REP, uc.update_customer, c.id, {"region": "touched"}, ["region"], 1)
    return await list_all(call)


@pytest.mark.parametrize("order_by", ["name", "-name", "create_time", "-create_time", "update_time",
                                      "-update_time", ""])
async def test_pagination_visits_every_row_once(call, order_by) -> None:
    everything = await _populate_for_sorting(call)
    sort = order_by.removeprefix("-") or "create_time"
    descending = order_by.startswith("-") or not order_by
    expected = [c.id for c in sorted(everything, key=SORTS[sort], reverse=descending)]
    assert [c.id for c in await list_all(call, order_by=order_by)] == expected

    for limit in (1, 2, 4, len(everything) - 1, len(everything)):
        seen: list[uuid.UUID] = []
        token = ""
        for _ in range(len(everything) + 2):
            page, token = await call(EAST_REP, uc.list_customers, page_token=token, limit=limit,
                                     order_by=order_by)
            assert len(page) <= limit
            seen += [c.id for c in page]
            if not token:
                break
        assert token == "", "pagination did not end"
        assert seen == expected, limit


async def test_default_sort_is_newest_first(call) -> None:
    made = [await new_customer(call, name=f"c{i}") for i in range(3)]
    assert [c.id for c in await list_all(call)] == [c.id for c in reversed(made)]


async def test_page_size_default_and_limits(call) -> None:
    for i in range(3):
        await new_customer(call, name=f"c{i}")
    page, token = await call(EAST_REP, uc.list_customers, page_token="", limit=0, order_by="name")
    assert len(page) == 3 and token == ""
    for bad in (-1, 201):
        with pytest.raises(InvalidArgument):
            await call(EAST_REP, uc.list_customers, page_token="", limit=bad, order_by="name")


def _token(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


async def test_bad_cursors_and_sorts_are_invalid_argument(call) -> None:
    for i in range(3):
        await new_customer(call, name=f"c{i}")
    _, name_token = await call(EAST_REP, uc.list_customers, page_token="", limit=1, order_by="name")
    assert name_token
    bad_requests = [
        ("-name", name_token),            # a cursor from another sort (direction counts)
        ("create_time", name_token),
        ("", name_token),
        ("name", "garbage!!"),
        ("name", "bm90IGpzb24"),          # base64 of "not json"
        ("name", _token([1, 2])),
        ("name", _token({"s": "name"})),
        ("name", _token({"s": "name", "v": ["x"]})),
        ("name", _token({"s": "name", "v": [1, str(uuid.uuid4())]})),
        ("name", _token({"s": "name", "v": ["x", "not-a-uuid"]})),
        ("create_time", _token({"s": "create_time", "v": ["yesterday", str(uuid.uuid4())]})),
        ("-update_time", _token({"s": "-update_time", "v": None})),
    ]
    for order_by, token in bad_requests:
        with pytest.raises(InvalidArgument) as exc:
            await call(EAST_REP, uc.list_customers, page_token=token, limit=1, order_by=order_by)
        assert fields_of(exc.value.violations) == {"cursor"}, (order_by, token)
    for order_by in ("tax_id", "--name", "name desc", "deleted_at"):
        with pytest.raises(InvalidArgument) as exc:
            await call(EAST_REP, uc.list_customers, page_token="", limit=1, order_by=order_by)
        assert fields_of(exc.value.violations) == {"sort"}


# Data scopes (R-SEC-02) ----------------------------------------------------------------

async def test_other_reps_cannot_reach_a_customer(call, counts) -> None:
    c = await new_customer(call, tags=("secret-tag",))
    contact = await call(EAST_REP, uc.add_contact, c.id, {"name": "Wang"})
    before = await counts()
    for principal in (WEST_REP, EAST_REP_2):
        attempts = [
            (uc.get_customer, (c.id,)),
            (uc.update_customer, (c.id, {"name": "x"}, ["name"], 0)),
            (uc.delete_customer, (c.id, 0)),
            (uc.add_contact, (c.id, {"name": "Spy"})),
            (uc.update_contact, (c.id, contact.id, {"name": "x"}, ["name"], 0)),
            (uc.remove_contact, (c.id, contact.id)),
            (uc.list_contacts, (c.id,)),
            (uc.record_follow_up, (c.id, {"kind": FollowUpKind.CALL, "occurred_at": NOW, "summary": "x"})),
        ]
        for use_case, args in attempts:
            with pytest.raises(NotFound):  # not PermissionDenied: nothing says it exists
                await call(principal, use_case, *args)
        with pytest.raises(NotFound):
            await call(principal, uc.list_follow_ups, c.id, page_token="", limit=0)
        assert await list_all(call, principal) == []
        assert await list_all(call, principal, name_contains="Acme") == []
        assert await call(principal, uc.list_tags) == []
    assert await counts() == before


async def test_scopes_widen_with_the_role(call) -> None:
    east = await new_customer(call, EAST_REP, name="east", tags=("t",))
    east2 = await new_customer(call, EAST_REP_2, name="east2", tags=("t",))
    west = await new_customer(call, WEST_REP, name="west", tags=("t", "w"))
    admins = await new_customer(call, ADMIN, name="admins")
    visible = {
        EAST_REP: {east.id}, EAST_REP_2: {east2.id}, WEST_REP: {west.id},
        EAST_MANAGER: {east.id, east2.id},
        DIRECTOR: {east.id, east2.id, west.id},
        ADMIN: {east.id, east2.id, west.id, admins.id},
    }
    everyone = {east.id, east2.id, west.id, admins.id}
    for principal, ids in visible.items():
        assert {c.id for c in await list_all(call, principal)} == ids, principal.subject
        for customer_id in everyone:
            if customer_id in ids:
                assert (await call(principal, uc.get_customer, customer_id)).id == customer_id
            else:
                with pytest.raises(NotFound):
                    await call(principal, uc.get_customer, customer_id)
    # Tag counts only count what the caller may see.
    assert await call(EAST_REP, uc.list_tags) == [("t", 1)]
    assert await call(EAST_MANAGER, uc.list_tags) == [("t", 2)]
    assert await call(DIRECTOR, uc.list_tags) == [("t", 3), ("w", 1)]


async def test_manager_and_director_may_change_what_they_see(call) -> None:
    c = await new_customer(call, EAST_REP)
    c = await call(EAST_MANAGER, uc.update_customer, c.id, {"region": "r1"}, ["region"], 1)
    c = await call(DIRECTOR, uc.update_customer, c.id, {"region": "r2"}, ["region"], 2)
    await call(ADMIN, uc.delete_customer, c.id, 3)
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_customer, c.id)


# Contacts (R-CUS-02) -----------------------------------------------------------------

async def test_contacts_crud_with_versions(call, outbox, counts) -> None:
    c = await new_customer(call)
    first = await call(EAST_REP, uc.add_contact, c.id,
                       {"name": " Zhou  Li ", "phones": ("138 0013 8000",), "email": "Zhou@Example.com"})
    assert (first.name, first.phones, first.email, first.version, first.is_key) == (
        "Zhou Li", ("+8613800138000",), "Zhou@example.com", 1, False)
    key = await call(EAST_REP, uc.add_contact, c.id, {"name": "Wu", "title": "CEO", "is_key": True})
    assert [x.id for x in await call(EAST_REP, uc.list_contacts, c.id)] == [key.id, first.id]  # key first

    updated = await call(EAST_REP, uc.update_contact, c.id, first.id,
                         {"phones": ("+86 139 0013 9000", "13800138000"), "name": "IGNORED"}, ["phones"], 1)
    assert (updated.phones, updated.name, updated.version) == (("+8613900139000", "+8613800138000"), "Zhou Li", 2)
    before = await counts()
    with pytest.raises(StaleVersion):
        await call(EAST_REP, uc.update_contact, c.id, first.id, {"title": "x"}, ["title"], 1)
    assert await call(EAST_REP, uc.update_contact, c.id, first.id, {"name": "Zhou Li"}, ["name"], 2) == updated
    for mask in (["customer_id"], ["version"]):
        with pytest.raises(InvalidArgument) as exc:
            await call(EAST_REP, uc.update_contact, c.id, first.id, {"name": "x"}, mask, 2)
        assert fields_of(exc.value.violations) == {"update_mask"}
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, uc.update_contact, c.id, first.id, {"email": "no", "phones": ("1",)},
                   ["email", "phones"], 2)
    assert fields_of(exc.value.violations) == {"email", "phones[0]"}
    assert await counts() == before

    await call(EAST_REP, uc.remove_contact, c.id, key.id)
    assert [x.id for x in await call(EAST_REP, uc.list_contacts, c.id)] == [first.id]
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.remove_contact, c.id, key.id)

    rows = (await outbox())[1:]
    assert [(r.subject, r.type) for r in rows] == [
        ("crm.customers.contact.added", "crm.customers.v1.ContactAdded"),
        ("crm.customers.contact.added", "crm.customers.v1.ContactAdded"),
        ("crm.customers.contact.updated", "crm.customers.v1.ContactUpdated"),
        ("crm.customers.contact.removed", "crm.customers.v1.ContactRemoved"),
    ]
    assert all(r.headers["ce-actor"] == "rep-east" and r.headers["ce-subject"] == str(c.id) for r in rows)
    assert rows[0].message().contact.id == str(first.id)
    upd = rows[2].message()
    assert list(upd.changed_fields) == ["phones"]
    # Events carry phones masked (R-SEC-04; docs/services/customers.md, "Events").
    assert list(upd.before.phones) == ["+86138****8000"] and upd.after.version == 2
    assert rows[3].message().contact.id == str(key.id)
    # Each carries whose customer it is, so notifications reach that customer's readers only.
    assert {(s.owner_id, s.team_id, s.department_path, s.has_signed_contract)
            for s in (r.message().customer_scope for r in rows)} == {("rep-east", "east", "/sales/east/", False)}


async def test_invalid_contact_writes_nothing(call, counts) -> None:
    c = await new_customer(call)
    before = await counts()
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, uc.add_contact, c.id, {"name": "", "phones": ("13800138000", "12"), "email": "x@"})
    assert fields_of(exc.value.violations) == {"name", "phones[1]", "email"}
    assert await counts() == before


async def test_contact_of_another_customer_is_not_found(call) -> None:
    a = await new_customer(call, name="A")
    b = await new_customer(call, name="B")
    contact = await call(EAST_REP, uc.add_contact, a.id, {"name": "Wang"})
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.update_contact, b.id, contact.id, {"name": "x"}, ["name"], 0)
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.remove_contact, b.id, contact.id)
    assert await call(EAST_REP, uc.list_contacts, b.id) == []


# Follow-ups (R-CUS-05) -----------------------------------------------------------------

def follow(summary: str, at: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {"kind": FollowUpKind.VISIT, "occurred_at": at, "summary": summary, **extra}


async def test_follow_up_timeline_newest_first_paginated(call, outbox) -> None:
    c = await new_customer(call)
    base = NOW - dt.timedelta(days=10)
    times = [base + dt.timedelta(days=d) for d in (3, 1, 7, 3, 5, 3, 9)]  # ties on day 3
    made = [await call(EAST_REP, uc.record_follow_up, c.id, follow(f"f{i}", t)) for i, t in enumerate(times)]
    expected = [f.id for f in sorted(made, key=lambda f: (f.occurred_at, f.id), reverse=True)]
    for limit in (1, 2, 3, 50):
        seen, token = [], ""
        for _ in range(len(made) + 2):
            page, token = await call(EAST_REP, uc.list_follow_ups, c.id, page_token=token, limit=limit)
            seen += [f.id for f in page]
            if not token:
                break
        assert seen == expected, limit
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, uc.list_follow_ups, c.id, page_token="nonsense", limit=2)
    rows = (await outbox())[1:]
    assert len(rows) == len(made)
    assert {(r.subject, r.type) for r in rows} == {("crm.customers.followup.recorded",
                                                     "crm.customers.v1.FollowUpRecorded")}
    assert rows[0].message().follow_up.summary == "f0"
    assert rows[0].headers["ce-subject"] == str(c.id)
    scope = rows[0].message().customer_scope
    assert (scope.owner_id, scope.team_id, scope.department_path) == (c.owner_id, c.team_id, c.department_path)


async def test_follow_up_fields(call) -> None:
    c = await new_customer(call)
    contact = await call(EAST_REP, uc.add_contact, c.id, {"name": "Wang"})
    f = await call(EAST_REP, uc.record_follow_up, c.id, follow(
        " Visited  the plant ", NOW - dt.timedelta(hours=2), contact_id=contact.id,
        key_facts=(" interested in  catheters ", ""), content=" long notes "))
    assert (f.summary, f.key_facts, f.content) == ("Visited the plant", ("interested in catheters",), "long notes")
    assert (f.author_id, f.author_name, f.contact_id) == ("rep-east", "Li Wei", contact.id)
    [listed], _ = await call(EAST_REP, uc.list_follow_ups, c.id, page_token="", limit=0)
    assert listed == f
    # Removing the contact keeps the follow-up on the timeline.
    await call(EAST_REP, uc.remove_contact, c.id, contact.id)
    [listed], _ = await call(EAST_REP, uc.list_follow_ups, c.id, page_token="", limit=0)
    assert listed.contact_id is None and listed.summary == f.summary


async def test_follow_up_contact_must_belong_to_the_customer(call, counts) -> None:
    a = await new_customer(call, name="A")
    b = await new_customer(call, name="B")
    contact_of_b = await call(EAST_REP, uc.add_contact, b.id, {"name": "Wang"})
    before = await counts()
    for contact_id in (contact_of_b.id, uuid.uuid4()):
        with pytest.raises(InvalidArgument) as exc:
            await call(EAST_REP, uc.record_follow_up, a.id, follow("x", NOW, contact_id=contact_id))
        assert fields_of(exc.value.violations) == {"contact_id"}
    assert await counts() == before


async def test_future_follow_up_rejected(call, counts) -> None:
    c = await new_customer(call)
    before = await counts()
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, uc.record_follow_up, c.id, follow("", dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)))
    assert fields_of(exc.value.violations) == {"occurred_at", "summary"}
    assert await counts() == before


# Industries (R-CUS-01) ---------------------------------------------------------------

async def test_industries_seeded_and_extensible(call, uow, counts) -> None:
    async with uow() as u:
        seeded = await uc.list_industries(u)
    codes = [code for code, _, _ in seeded]
    assert codes == sorted(codes) and len(codes) == 16
    assert ("medical_devices", "Medical devices", "医疗器械") in seeded

    await call(ADMIN, uc.create_industry, " Dental_Labs ", " Dental labs ", "牙科技工所")
    async with uow() as u:
        assert ("dental_labs", "Dental labs", "牙科技工所") in await uc.list_industries(u)
    c = await new_customer(call, industry="dental_labs")
    assert c.industry == "dental_labs"

    before = await counts()
    with pytest.raises(AlreadyExists) as exc:
        await call(ADMIN, uc.create_industry, "DENTAL_LABS", "Again", "")
    assert exc.value.reason == "DUPLICATE_INDUSTRY"
    with pytest.raises(PermissionDenied):
        await call(DIRECTOR, uc.create_industry, "aerospace", "Aerospace", "")
    for code, name, field in [("", "x", "code"), ("has space", "x", "code"), ("航空", "x", "code"),
                              ("a" * 51, "x", "code"), ("a-b", "x", "code"), ("aero", " ", "name")]:
        with pytest.raises(InvalidArgument) as exc:
            await call(ADMIN, uc.create_industry, code, name, "")
        assert fields_of(exc.value.violations) == {field}, code
    assert await counts() == before


# Tags (R-CUS-04) ---------------------------------------------------------------------

async def test_tag_usage_counts_and_order(call) -> None:
    await new_customer(call, name="a", tags=("vip", "export"))
    await new_customer(call, name="b", tags=("vip",))
    c = await new_customer(call, name="c", tags=("b2b",))
    assert await call(EAST_REP, uc.list_tags) == [("vip", 2), ("b2b", 1), ("export", 1)]
    await call(EAST_REP, uc.update_customer, c.id, {"tags": ()}, ["tags"], 1)
    assert await call(EAST_REP, uc.list_tags) == [("vip", 2), ("export", 1)]
    await new_customer(call, name="d", tags=("VIP",))
    assert await call(EAST_REP, uc.list_tags) == [("VIP", 3), ("export", 1)]


async def test_nul_characters_never_reach_the_database(call) -> None:
    # PostgreSQL refuses NUL in text; it must be cleaned away or rejected, never a 500.
    c = await new_customer(call, ADMIN)
    assert (await new_customer(call, ADMIN, name="A\x00cme")).name == "Acme"
    assert (await new_customer(call, ADMIN, industry="metals\x00")).industry == "metals"
    assert (await new_customer(call, ADMIN, owner_id="rep-east\x00")).owner_id == "rep-east"
    f = await call(ADMIN, uc.record_follow_up, c.id, follow("s\x00", NOW, content="x\x00y", key_facts=("k\x00",)))
    assert (f.summary, f.content, f.key_facts) == ("s", "xy", ("k",))
    contact = await call(ADMIN, uc.add_contact, c.id, {"name": "W\x00ang", "title": "\x00", "wechat": "w\x00"})
    assert (contact.name, contact.title, contact.wechat) == ("Wang", "", "w")
    for key in ("name_contains", "industry", "owner_id", "tag", "team_id"):
        await call(ADMIN, uc.list_customers, page_token="", limit=0, order_by="", **{key: "a\x00"})
    with pytest.raises(InvalidArgument):
        await call(ADMIN, uc.list_customers, page_token=_token({"s": "name", "v": ["a\x00", str(c.id)]}),
                   limit=0, order_by="name")


async def test_search_matches_the_cleaned_name(call) -> None:
    c = await new_customer(call, name="ACME Medical")
    assert [x.id for x in await list_all(call, name_contains=" ａｃｍｅ\u3000ｍｅｄ ")] == [c.id]


async def test_concurrent_updates_with_one_expected_version(call, outbox) -> None:
    c = await new_customer(call)
    results = await asyncio.gather(
        *(call(EAST_REP, uc.update_customer, c.id, {"region": f"r{i}"}, ["region"], 1) for i in range(3)),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Customer", "StaleVersion", "StaleVersion"], results
    assert (await call(EAST_REP, uc.get_customer, c.id)).version == 2
    assert len(await outbox()) == 2


async def test_no_failure_is_an_internal_error(call) -> None:
    """Bad input of every kind surfaces as a CrmError (a 4xx), never a bare exception (a 500)."""
    c = await new_customer(call)
    bad_calls = [
        (uc.create_customer, ({"name": "x", "addresses": (Address(kind=AddressKind.OFFICE, line=""),)},)),
        (uc.update_customer, (c.id, {"owner_id": ""}, ["owner_id"], 1)),
        (uc.update_customer, (c.id, {"tax_id": "bad"}, ["tax_id"], 1)),
        (uc.add_contact, (c.id, {"name": "x", "phones": ("++",)})),
    ]
    for use_case, args in bad_calls:
        with pytest.raises(CrmError):
            await call(EAST_REP, use_case, *args)
