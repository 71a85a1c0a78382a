"""R-CUS-03 through the gateway: resumable chunked uploads (Content-Range, resume from the received
offset, import from the upload) and likely duplicates with their merge."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from crmkit.testing.principals import EAST_REP, MARKETING, WEST_REP

pytestmark = pytest.mark.integration

UPLOADS = "/api/v1/imports/uploads"


def csv_file(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


async def put(client, auth, upload_id: str, data: bytes, first: int, total: int | str, principal=EAST_REP):
    last = first + len(data) - 1
    return await client.put(f"{UPLOADS}/{upload_id}", content=data, headers={
        **auth(principal), "Content-Type": "application/octet-stream",
        "Content-Range": f"bytes {first}-{last}/{total}"})


async def wait_for(client, auth, import_id: str, *statuses: str) -> dict:
    body: dict = {}
    for _ in range(400):
        r = await client.get(f"/api/v1/imports/{import_id}", headers=auth(EAST_REP))
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"import never reached {statuses}: {body}")


async def test_a_chunked_upload_resumes_and_imports(client, auth, unique, tax_id):
    names = [f"分块客户{unique()}" for _ in range(30)]
    data = csv_file([["客户名称", "统一社会信用代码", "联系人", "手机"]] +
                    [[n, tax_id(), "张三", "13800138000"] for n in names], "gbk")
    r = await client.post(UPLOADS, json={"file_name": "历史客户.csv", "size": len(data)}, headers=auth(EAST_REP))
    assert r.status_code == 201, r.text
    upload = r.json()
    assert upload["received"] == 0 and not upload["complete"] and r.headers["Upload-Offset"] == "0"
    uid = upload["id"]
    r = await put(client, auth, uid, data[:700], 0, len(data))
    assert r.status_code == 200 and r.json()["received"] == 700
    # The connection drops mid-way; the client skips ahead by mistake and is told where to resume.
    r = await put(client, auth, uid, data[900:1200], 900, len(data))
    assert r.status_code == 409 and r.json()["reason"] == "UPLOAD_OFFSET_MISMATCH"
    r = await client.get(f"{UPLOADS}/{uid}", headers=auth(EAST_REP))
    resume = int(r.headers["Upload-Offset"])
    assert resume == r.json()["received"] == 700
    # Starting the import before the last byte arrived is refused.
    r = await client.post(f"{UPLOADS}/{uid}/import", json={}, headers=auth(EAST_REP))
    assert r.status_code == 409 and r.json()["reason"] == "UPLOAD_INCOMPLETE"
    for first in range(resume, len(data), 500):
        r = await put(client, auth, uid, data[first:first + 500], first, "*")
        assert r.status_code == 200, r.text
    assert r.json()["complete"]
    # Someone else cannot see or start it.
    assert (await client.get(f"{UPLOADS}/{uid}", headers=auth(WEST_REP))).status_code == 404

    r = await client.post(f"{UPLOADS}/{uid}/import", json={"dedup_key": "tax_id", "on_match": "skip"},
                          headers=auth(EAST_REP))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("validating", "dry_run") and job["file_name"] == "历史客户.csv"
    checked = await wait_for(client, auth, job["id"], "dry_run", "refused")
    assert checked["status"] == "dry_run" and checked["total"] == 30 and checked["planned"]["created"] == 30
    r = await client.post(f"/api/v1/imports/{job['id']}/commit", headers=auth(EAST_REP))
    assert r.status_code == 202
    done = await wait_for(client, auth, job["id"], "done", "failed")
    assert done["done"]["created"] == 30
    listed = await client.get("/api/v1/customers", params={"name": names[0]}, headers=auth(EAST_REP))
    assert [c["name"] for c in listed.json()["items"]] == [names[0]]


async def test_bad_chunks_and_bad_files_are_clear_problems(client, auth, assert_problem):
    r = await client.post(UPLOADS, json={"file_name": "x.csv", "size": 10}, headers=auth(EAST_REP))
    uid = r.json()["id"]
    # Not octet-stream, a Content-Range that does not match the body, past the declared size.
    r = await client.put(f"{UPLOADS}/{uid}", content=b"abc", headers={
        **auth(EAST_REP), "Content-Type": "text/plain", "Content-Range": "bytes 0-2/10"})
    assert_problem(r, 415)
    r = await client.put(f"{UPLOADS}/{uid}", content=b"abc", headers={
        **auth(EAST_REP), "Content-Type": "application/octet-stream", "Content-Range": "bytes 0-5/10"})
    assert_problem(r, 422)
    r = await put(client, auth, uid, b"0123456789ab", 0, 12)
    assert_problem(r, 422)
    r = await client.post(UPLOADS, json={"file_name": "x.csv", "size": 300 * 1024 * 1024}, headers=auth(EAST_REP))
    assert_problem(r, 422)
    # A file that is no CSV goes up fine and is refused, with the reason, by the background check.
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00"
    r = await client.post(UPLOADS, json={"file_name": "logo.png", "size": len(png)}, headers=auth(EAST_REP))
    uid = r.json()["id"]
    await put(client, auth, uid, png, 0, len(png))
    r = await client.post(f"{UPLOADS}/{uid}/import", headers=auth(EAST_REP))
    assert r.status_code == 202, r.text
    refused = await wait_for(client, auth, r.json()["id"], "refused", "dry_run")
    assert refused["status"] == "refused" and "not a CSV" in refused["error"]
    r = await client.post(f"/api/v1/imports/{refused['id']}/commit", headers=auth(EAST_REP))
    assert_problem(r, 409)
    # Read-only roles may not upload.
    r = await client.post(UPLOADS, json={"file_name": "x.csv", "size": 10}, headers=auth(MARKETING))
    assert_problem(r, 403)


async def test_duplicates_report_merge_and_dismissal(client, auth, create, unique, tax_id, sql):
    stem = f"重复检测{unique()}精密机械"
    a = await create(EAST_REP, name=f"{stem}有限公司", tags=["VIP"])
    b = await create(EAST_REP, name=f"{stem}股份有限公司", tax_id=tax_id(), region="江苏", tags=["OEM"])
    c = await create(EAST_REP, name=f"{stem}(苏州)有限公司")
    r = await client.get("/api/v1/customers/duplicates", params={"customer_id": a["id"], "min_similarity": 0.6},
                         headers=auth(EAST_REP))
    assert r.status_code == 200, r.text
    pairs = {p["second"]["id"]: p for p in r.json()["items"]}
    assert set(pairs) == {b["id"], c["id"]}
    assert pairs[b["id"]]["name_similarity"] == 1.0 and not pairs[b["id"]]["same_tax_id"]
    assert all(p["first"]["id"] == a["id"] for p in pairs.values())

    r = await client.post(f"/api/v1/customers/{a['id']}/not-duplicates", json={"other_id": c["id"]},
                          headers=auth(EAST_REP))
    assert r.status_code == 204
    r = await client.get("/api/v1/customers/duplicates", params={"customer_id": a["id"], "min_similarity": 0.6},
                         headers=auth(EAST_REP))
    assert [p["second"]["id"] for p in r.json()["items"]] == [b["id"]]

    r = await client.post(f"/api/v1/customers/{a['id']}/merge", json={"merged_id": b["id"]}, headers=auth(EAST_REP))
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["customer"]["id"] == a["id"] and merged["customer"]["region"] == "江苏"
    assert merged["customer"]["tags"] == ["OEM", "VIP"] and merged["customer"]["tax_id"] == b["tax_id"]
    assert merged["customer"]["version"] == a["version"] + 1 and r.headers["ETag"] == f'"v{a["version"] + 1}"'
    assert set(merged["filled_fields"]) == {"tax_id", "region", "tags"}
    assert (await client.get(f"/api/v1/customers/{b['id']}", headers=auth(EAST_REP))).status_code == 404
    rows = await sql("SELECT merged_into FROM customers WHERE id = :id", id=b["id"])
    assert str(rows[0].merged_into) == a["id"]
    # Merging across data scopes: the other rep's customer does not exist for this one.
    theirs = await create(WEST_REP, name=f"{stem}集团")
    r = await client.post(f"/api/v1/customers/{a['id']}/merge", json={"merged_id": theirs["id"]},
                          headers=auth(EAST_REP))
    assert r.status_code == 404
    r = await client.post(f"/api/v1/customers/{a['id']}/merge", json={"merged_id": a["id"]}, headers=auth(MARKETING))
    assert r.status_code == 403
