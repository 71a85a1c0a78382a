"""/api/v1/imports (R-CUS-03): upload → dry run → commit → progress → error file → revert, and bad
files answered with a clear problem, never a 500 and never a half-applied import."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from dataclasses import replace

import pytest
from openpyxl import Workbook, load_workbook

from crmkit.testing.principals import EAST_REP, MARKETING, WEST_REP

pytestmark = pytest.mark.integration

API = "/api/v1/imports"
HEADER = ["客户名称", "统一社会信用代码", "行业", "地区", "联系人", "手机"]


def csv_file(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


async def upload(client, auth, principal, content: bytes, name: str = "customers.csv", **form: str):
    return await client.post(API, headers=auth(principal), files={"file": (name, content, "text/csv")}, data=form)


async def wait_for(client, auth, import_id: str, status: str) -> dict:
    body: dict = {}
    for _ in range(200):
        r = await client.get(f"{API}/{import_id}", headers=auth(EAST_REP))
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"import never reached {status}: {body}")


async def test_gbk_upload_dry_run_commit_errors_and_revert(client, auth, unique, tax_id):
    name = f"导入客户{unique()}"
    content = csv_file([HEADER,
                        [name, tax_id(), "医疗器械", "福建", "张三", "13800138000"],
                        [f"坏行{unique()}", "91350100M000100Y40", "造船", "", "", ""],
                        ["=HYPERLINK(\"http://evil\")", "", "", "", "", ""]], "gbk")
    r = await upload(client, auth, EAST_REP, content, on_match="update")
    assert r.status_code == 201, r.text
    report = r.json()
    job = report["import"]
    assert job["status"] == "dry_run" and job["total"] == 3
    assert job["planned"] == {"created": 1, "updated": 0, "skipped": 0, "flagged": 0, "rejected": 2}
    assert [i["line"] for i in report["issues"]] == [3, 4]
    assert any("造船" in reason for reason in report["issues"][0]["reasons"])
    assert any("check digit" in reason for reason in report["issues"][0]["reasons"])
    assert "formula" in report["issues"][1]["reasons"][0]
    listed = await client.get("/api/v1/customers", headers=auth(EAST_REP), params={"name": name})
    assert listed.json()["items"] == []  # the dry run wrote nothing

    r = await client.post(f"{API}/{job['id']}/commit", headers=auth(EAST_REP))
    assert r.status_code == 202, r.text
    done = await wait_for(client, auth, job["id"], "done")
    assert done["done"]["created"] == 1 and done["done"]["rejected"] == 2 and done["processed"] == 3
    listed = await client.get("/api/v1/customers", headers=auth(EAST_REP), params={"name": name})
    [customer] = listed.json()["items"]
    assert customer["industry"] == "medical_devices"

    errors = await client.get(f"{API}/{job['id']}/errors", headers=auth(EAST_REP))
    assert errors.status_code == 200, errors.text
    assert errors.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
    assert rows[0][-3:] == ["line", "outcome", "reason"]
    assert [row[-3] for row in rows[1:]] == ["3", "4"]
    assert rows[2][0].startswith("'=")  # the rejected formula stays inert in the error file

    assert (await client.get(f"{API}/{job['id']}", headers=auth(WEST_REP))).status_code == 404

    r = await client.post(f"{API}/{job['id']}/revert", headers=auth(EAST_REP))
    assert r.status_code == 202, r.text
    await wait_for(client, auth, job["id"], "reverted")
    listed = await client.get("/api/v1/customers", headers=auth(EAST_REP), params={"name": name})
    assert listed.json()["items"] == []


async def test_xlsx_upload_with_column_mapping(client, auth, unique, tax_id):
    workbook = Workbook()
    workbook.active.append(["公司", "代码", "备注"])
    workbook.active.append([f"表格客户{unique()}", tax_id(), "随便"])
    out = io.BytesIO()
    workbook.save(out)
    r = await client.post(API, headers=auth(EAST_REP),
                          files={"file": ("c.xlsx", out.getvalue(), "application/octet-stream")},
                          data={"column_mapping": '{"公司": "name", "代码": "tax_id", "备注": ""}'})
    assert r.status_code == 201, r.text
    assert r.json()["import"]["planned"]["created"] == 1


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_template_downloads(client, auth, fmt):
    r = await client.get(f"{API}/template", headers=auth(EAST_REP), params={"format": fmt})
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    if fmt == "csv":
        assert r.content.startswith(b"\xef\xbb\xbf") and "客户名称" in r.content.decode("utf-8-sig")
    else:
        sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
        assert next(sheet.iter_rows(values_only=True))[0] == "客户名称"


async def test_bad_files_get_a_clear_problem(client, auth, assert_problem):
    cases = [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "not a CSV"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, ".xls"),
        (b"PK\x03\x04broken zip", "Excel"),
        (csv_file([["甲公司", "91350100M000100Y43"]]), "no header row"),
        (b"", "empty"),
    ]
    for content, mention in cases:
        r = await upload(client, auth, EAST_REP, content)
        assert_problem(r, 422, reason="INVALID_ARGUMENT", detail_mentions=(mention,))
    r = await upload(client, auth, EAST_REP, csv_file([["name"], ["x"]]), dedup_key="email")
    assert r.status_code == 422
    r = await upload(client, auth, EAST_REP, csv_file([["name"], ["x"]]), column_mapping="{not json")
    assert_problem(r, 422, detail_mentions=("column_mapping",))


async def test_uploads_only_as_multipart_and_only_with_write_permission(client, auth, assert_problem):
    r = await client.post(API, headers=auth(EAST_REP) | {"Content-Type": "text/csv"}, content=b"name\nx\n")
    assert_problem(r, 415)
    r = await client.post("/api/v1/customers", headers=auth(EAST_REP),
                          files={"file": ("c.csv", b"name\nx\n", "text/csv")})
    assert_problem(r, 415)  # multipart is allowed on the upload route only
    r = await upload(client, auth, MARKETING, csv_file([["name"], ["x"]]))
    assert_problem(r, 403)


async def test_upload_may_exceed_the_json_body_limit_but_not_the_import_limit(client, auth, gateway_settings,
                                                                            assert_problem):
    rows = [["name"]] + [[f"大文件客户{i:06d}"] for i in range(800)]
    content = csv_file(rows)
    assert len(content) > gateway_settings.max_body_bytes
    r = await upload(client, auth, EAST_REP, content)
    assert r.status_code == 201, r.text
    assert r.json()["import"]["total"] == 800
    r = await client.post(API, headers=auth(EAST_REP) | {"Content-Length": str(gateway_settings.import_max_bytes + 1)},
                          files={"file": ("c.csv", b"name\nx\n", "text/csv")})
    assert r.status_code == 413
    giant = b"name\n" + b"x" * (10 * 1024 * 1024) + b"\n"  # 10 MB in one cell
    assert_problem(await upload(client, auth, EAST_REP, giant), 413, reason="PAYLOAD_TOO_LARGE")


# Export -----------------------------------------------------------------------------------------

EXPORTER = replace(EAST_REP, subject=f"exporter-{uuid.uuid4().hex[:6]}",
                   permissions=("customers.read", "customers.write", "customers.export"))


async def test_export_csv_and_xlsx_in_scope_and_re_importable(client, auth, create, unique, tax_id):
    mine = await create(EXPORTER, name=f"导出客户{unique()}", tax_id=tax_id(), industry="medical_devices")
    r = await client.post(f"/api/v1/customers/{mine['id']}/contacts", headers=auth(EXPORTER),
                          json={"name": "李四", "phones": ["+86 138 0013 8000"]})
    assert r.status_code == 201, r.text
    other = await create(WEST_REP, name=f"别人的{unique()}")

    r = await client.get("/api/v1/customers/export", headers=auth(EXPORTER))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    ids = {row["id"] for row in rows}
    assert mine["id"] in ids and other["id"] not in ids  # own data scope only
    [row] = [row for row in rows if row["id"] == mine["id"]]
    assert row["contact_name"] == "李四" and row["contact_phone"] == "+8613800138000"
    assert row["industry"] == "medical_devices"

    r = await client.get("/api/v1/customers/export", headers=auth(EXPORTER), params={"format": "xlsx"})
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "id" and any(v[0] == mine["id"] for v in values[1:])

    # The CSV export is a valid import file: every row matches an existing customer.
    csv_rows = [list(rows[0].keys())] + [list(r.values()) for r in rows]
    r = await upload(client, auth, EXPORTER, csv_file(csv_rows))
    assert r.status_code == 201, r.text
    assert r.json()["import"]["planned"]["skipped"] == len(rows)


async def test_export_needs_the_export_permission(client, auth, assert_problem):
    assert_problem(await client.get("/api/v1/customers/export", headers=auth(EAST_REP)), 403)
