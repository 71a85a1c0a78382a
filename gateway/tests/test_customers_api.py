"""REST round trips through the gateway to the real customers service: customers, contacts,
follow-ups, list filters, sorts and cursors, ETag / If-Match."""

from __future__ import annotations

import datetime as dt

import pytest

from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, EAST_REP_2

pytestmark = pytest.mark.integration

API = "/api/v1/customers"


async def test_customer_round_trip(client, auth, unique, tax_id, assert_problem):
    h = auth(EAST_REP)
    tid = tax_id()
    name = f"Round Trip {unique()}"
    created = await client.post(API, headers=h, json={
        "name": f"  {name}  ", "tax_id": tid, "industry": "electronics", "region": "Shanghai",
        "tags": ["vip", "VIP", "export"], "lifecycle_stage": "prospect",
        "addresses": [{"kind": "billing", "line": "1 Century Ave", "city": "Shanghai"}]})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    body = created.json()
    cid = body["id"]
    assert created.headers["location"] == f"{API}/{cid}"
    assert created.headers["etag"] == '"v1"'
    assert body["name"] == name  # trimmed by the service
    assert body["tax_id"] == tid
    assert body["owner_id"] == EAST_REP.subject and body["team_id"] == "east"
    assert body["department_path"] == EAST_REP.department_path
    assert body["created_by"] == EAST_REP.subject
    assert body["tags"] == ["export", "vip"]
    assert body["addresses"] == [{"kind": "billing", "line": "1 Century Ave", "city": "Shanghai", "province": "",
                                  "country": "CN", "postal_code": ""}]
    assert body["version"] == 1
    assert dt.datetime.fromisoformat(body["created_at"]).tzinfo is not None

    got = await client.get(created.headers["location"], headers=h)
    assert got.status_code == 200
    assert got.headers["etag"] == '"v1"'
    assert got.json() == body

    patched = await client.patch(f"{API}/{cid}", headers=h | {"If-Match": got.headers["etag"]},
                                 json={"region": "Pudong", "tags": ["vip"]})
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"v2"'
    assert patched.json()["region"] == "Pudong" and patched.json()["tags"] == ["vip"]
    assert patched.json()["name"] == name  # untouched fields stay

    stale = await client.patch(f"{API}/{cid}", headers=h | {"If-Match": '"v1"'}, json={"region": "Lost"})
    assert_problem(stale, 412, reason="STALE_VERSION", detail_mentions=("version 2",))
    malformed = await client.patch(f"{API}/{cid}", headers=h | {"If-Match": "garbage"}, json={"region": "Lost"})
    assert_problem(malformed, 412, reason="STALE_VERSION", detail_mentions=("If-Match",))
    weak = await client.patch(f"{API}/{cid}", headers=h | {"If-Match": 'W/"v2"'}, json={"region": "Puxi"})
    assert weak.status_code == 200 and weak.headers["etag"] == '"v3"'
    assert (await client.get(f"{API}/{cid}", headers=h)).json()["region"] == "Puxi"  # no lost update

    stale_delete = await client.delete(f"{API}/{cid}", headers=h | {"If-Match": '"v1"'})
    assert_problem(stale_delete, 412, reason="STALE_VERSION")
    deleted = await client.delete(f"{API}/{cid}", headers=h | {"If-Match": '"v3"'})
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await client.get(f"{API}/{cid}", headers=h)
    assert_problem(gone, 404, reason="NOT_FOUND")
    again = await client.delete(f"{API}/{cid}", headers=h)
    assert_problem(again, 404, reason="NOT_FOUND")
    listed = await client.get(API, headers=h, params={"name": name})
    assert listed.json()["items"] == []


async def test_patch_without_if_match_applies(client, auth, create):
    customer = await create(EAST_REP)
    h = auth(EAST_REP)
    patched = await client.patch(f"{API}/{customer['id']}", headers=h, json={"lifecycle_stage": "customer"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["lifecycle_stage"] == "customer" and patched.headers["etag"] == '"v2"'
    star = await client.patch(f"{API}/{customer['id']}", headers=h | {"If-Match": "*"}, json={"region": "X"})
    assert star.status_code == 200 and star.headers["etag"] == '"v3"'


async def test_an_empty_merge_patch_is_a_no_op(client, auth, create, assert_problem):
    customer = await create(EAST_REP)
    h = auth(EAST_REP)
    same = await client.patch(f"{API}/{customer['id']}", headers=h | {"If-Match": '"v1"'}, json={})
    assert same.status_code == 200 and same.headers["etag"] == '"v1"'
    assert same.json() == customer
    stale = await client.patch(f"{API}/{customer['id']}", headers=h | {"If-Match": '"v9"'}, json={})
    assert_problem(stale, 412, reason="STALE_VERSION")


async def test_contacts_round_trip(client, auth, create, assert_problem):
    h = auth(EAST_REP)
    customer = await create(EAST_REP)
    base = f"{API}/{customer['id']}/contacts"
    added = await client.post(base, headers=h, json={
        "name": "Liu Yang", "title": "Purchasing manager", "phones": ["138 0013 8000"],
        "email": "Liu.Yang@Example.COM", "is_key": True})
    assert added.status_code == 201, added.text
    contact = added.json()
    assert added.headers["location"] == f"{base}/{contact['id']}"
    assert added.headers["etag"] == '"v1"'
    assert contact["customer_id"] == customer["id"]
    assert contact["phones"] == ["+8613800138000"]
    assert contact["is_key"] is True
    second = await client.post(base, headers=h, json={"name": "Ann Other"})
    assert second.status_code == 201

    listed = await client.get(base, headers=h)
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["items"]] == ["Liu Yang", "Ann Other"]  # key contacts first

    patched = await client.patch(f"{base}/{contact['id']}", headers=h | {"If-Match": '"v1"'},
                                 json={"title": "Director"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Director" and patched.headers["etag"] == '"v2"'
    stale = await client.patch(f"{base}/{contact['id']}", headers=h | {"If-Match": '"v1"'}, json={"title": "X"})
    assert_problem(stale, 412, reason="STALE_VERSION")

    bad_phone = await client.post(base, headers=h, json={"name": "Bad", "phones": ["12"]})
    assert_problem(bad_phone, 422, fields=("phones[0]",))

    removed = await client.delete(f"{base}/{contact['id']}", headers=h)
    assert removed.status_code == 204
    assert [c["name"] for c in (await client.get(base, headers=h)).json()["items"]] == ["Ann Other"]
    missing = await client.patch(f"{base}/{contact['id']}", headers=h, json={"title": "X"})
    assert_problem(missing, 404)


async def test_follow_ups_timeline(client, auth, create, assert_problem):
    h = auth(EAST_REP)
    customer = await create(EAST_REP)
    base = f"{API}/{customer['id']}/follow-ups"
    contact = (await client.post(f"{API}/{customer['id']}/contacts", headers=h, json={"name": "Sun Li"})).json()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    recorded = []
    for i in range(5):
        r = await client.post(base, headers=h, json={
            "kind": "visit" if i % 2 else "call", "summary": f"talk {i}", "key_facts": ["budget 1M"],
            "occurred_at": (now - dt.timedelta(days=5 - i)).isoformat(), "contact_id": contact["id"]})
        assert r.status_code == 201, r.text
        recorded.append(r.json())
    first = recorded[0]
    assert first["customer_id"] == customer["id"] and first["author_id"] == EAST_REP.subject
    assert first["author_name"] == EAST_REP.name and first["contact_id"] == contact["id"]
    assert first["kind"] == "call" and first["key_facts"] == ["budget 1M"]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(base, headers=h, params=params)
        assert page.status_code == 200, page.text
        seen += [f["summary"] for f in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert seen == [f"talk {i}" for i in reversed(range(5))]  # newest first, each once
    assert pages == 3

    future = await client.post(base, headers=h, json={
        "kind": "call", "summary": "from the future", "occurred_at": (now + dt.timedelta(days=1)).isoformat()})
    assert_problem(future, 422, fields=("occurred_at",))
    naive = await client.post(base, headers=h, json={"kind": "call", "summary": "x",
                                                    "occurred_at": "2024-01-01T10:00:00"})
    assert_problem(naive, 422, fields=("occurred_at",))
    bad_kind = await client.post(base, headers=h, json={"kind": "telepathy", "summary": "x"})
    assert_problem(bad_kind, 422, fields=("kind",))
    stranger = await client.post(base, headers=h, json={"kind": "call", "summary": "x",
                                                       "contact_id": "0190a0a0-0000-7000-8000-000000000000"})
    assert_problem(stranger, 422, fields=("contact_id",))
    bad_contact = await client.post(base, headers=h, json={"kind": "call", "summary": "x", "contact_id": "nope"})
    assert bad_contact.status_code == 422, bad_contact.text
    total = (await client.get(base, headers=h, params={"limit": 200})).json()["items"]
    assert len(total) == 5  # none of the rejected ones was written


async def test_list_filters(client, auth, create, unique):
    tag = f"flt-{unique()}"
    other_tag = f"flt-{unique()}"
    a = await create(ADMIN, name=f"Alpha Filter {tag}", industry="automotive", tags=[tag],
                     owner_id=EAST_REP.subject, team_id="east")
    b = await create(ADMIN, name=f"Beta Filter {tag}", industry="chemicals", tags=[tag, other_tag],
                     owner_id=EAST_REP_2.subject, team_id="east")
    c = await create(ADMIN, name=f"Gamma Filter {tag}", industry="automotive", tags=[other_tag],
                     owner_id=EAST_REP.subject, team_id="east")
    h = auth(ADMIN)

    async def ids(**params: str) -> set[str]:
        r = await client.get(API, headers=h, params=params | {"limit": 200})
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["items"]}

    assert await ids(tag=tag) == {a["id"], b["id"]}
    assert await ids(tag=other_tag) == {b["id"], c["id"]}
    assert await ids(name=tag) == {a["id"], b["id"], c["id"]}
    assert await ids(name=f"alpha filter {tag}".upper()) == {a["id"]}  # case-insensitive contains
    assert await ids(name=tag, industry="automotive") == {a["id"], c["id"]}
    assert await ids(name=tag, owner_id=EAST_REP_2.subject) == {b["id"]}
    assert await ids(tag=tag, industry="automotive", owner_id=EAST_REP.subject) == {a["id"]}
    assert await ids(name="%", tag=tag) == set()  # LIKE wildcards are literal
    # data scopes: the rep sees their own, the manager the team's
    rep = await client.get(API, headers=auth(EAST_REP), params={"name": tag})
    assert {x["id"] for x in rep.json()["items"]} == {a["id"], c["id"]}
    mgr = await client.get(API, headers=auth(EAST_MANAGER), params={"name": tag})
    assert {x["id"] for x in mgr.json()["items"]} == {a["id"], b["id"], c["id"]}

    tags = await client.get("/api/v1/tags", headers=h)
    assert tags.status_code == 200
    usage = {t["name"]: t["customer_count"] for t in tags.json()["items"]}
    assert usage[tag] == 2 and usage[other_tag] == 2


@pytest.mark.parametrize("sort", ["name", "-name", "create_time", "-create_time", "update_time", "-update_time"])
async def test_sort_and_cursor_visit_every_row_once(client, auth, create, unique, sort, assert_problem):
    h = auth(ADMIN)
    tag = f"srt-{unique()}"
    letters = "dbfaec"  # names not in creation order
    made = [await create(ADMIN, name=f"sort{tag}{ch}", tags=[tag]) for ch in letters]
    # touch two records so update order differs from creation order
    for customer in (made[0], made[3]):
        r = await client.patch(f"{API}/{customer['id']}", headers=h, json={"region": "touched"})
        assert r.status_code == 200
    fresh = {x["id"]: x for x in (await client.get(API, headers=h, params={"tag": tag})).json()["items"]}
    field = {"name": "name", "create_time": "created_at", "update_time": "updated_at"}[sort.lstrip("-")]

    def key(c: dict) -> tuple:
        value = c[field] if field == "name" else dt.datetime.fromisoformat(c[field])
        return (value, c["id"])

    expected = [c["id"] for c in sorted(fresh.values(), key=key, reverse=sort.startswith("-"))]

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"tag": tag, "sort": sort, "limit": 4} | ({"cursor": cursor} if cursor else {})
        page = await client.get(API, headers=h, params=params)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) <= 4
        seen += [x["id"] for x in items]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert len(set(seen)) == len(made)

    # a cursor belongs to its sort
    first = await client.get(API, headers=h, params={"tag": tag, "sort": sort, "limit": 2})
    other = "name" if sort.lstrip("-") != "name" else "create_time"
    wrong = await client.get(API, headers=h, params={"tag": tag, "sort": other,
                                                     "cursor": first.json()["next_cursor"]})
    assert_problem(wrong, 400, reason="INVALID_CURSOR", fields=("cursor",))


async def test_default_list_is_newest_first_and_limit_bounds(client, auth, create, unique, assert_problem):
    h = auth(ADMIN)
    tag = f"def-{unique()}"
    made = [await create(ADMIN, tags=[tag]) for _ in range(3)]
    r = await client.get(API, headers=h, params={"tag": tag})
    assert [x["id"] for x in r.json()["items"]] == [m["id"] for m in reversed(made)]
    assert r.json()["next_cursor"] is None
    for bad in ("0", "201", "-1", "ten"):
        assert_problem(await client.get(API, headers=h, params={"limit": bad}), 422, fields=("limit",))
    assert_problem(await client.get(API, headers=h, params={"sort": "tax_id"}), 422, fields=("sort",))


async def test_reference_data(client, auth, assert_problem, unique):
    industries = await client.get("/api/v1/industries", headers=auth(EAST_REP))
    assert industries.status_code == 200
    codes = {i["code"] for i in industries.json()["items"]}
    assert {"automotive", "electronics", "other"} <= codes
    code = f"ind_{unique()}"
    denied = await client.post("/api/v1/industries", headers=auth(EAST_REP), json={"code": code, "name": "X"})
    assert_problem(denied, 403, reason="PERMISSION_DENIED")
    made = await client.post("/api/v1/industries", headers=auth(ADMIN), json={"code": code, "name": "Space"})
    assert made.status_code == 201, made.text
    assert made.json() == {"code": code, "name": "Space", "name_zh": ""}
    dup = await client.post("/api/v1/industries", headers=auth(ADMIN), json={"code": code, "name": "Space"})
    assert_problem(dup, 409, reason="DUPLICATE_INDUSTRY")
    unknown = await client.post(API, headers=auth(EAST_REP), json={"name": "X", "industry": "no_such"})
    assert_problem(unknown, 422, fields=("industry",))
