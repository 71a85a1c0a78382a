"""R-CUS-03 end to end: `crm import customers FILE` against the started suite — a GBK file with an
owner column resolved through identity's org chart, uploaded in chunks, dry run, error file,
commit — then the likely-duplicates report and a merge, whose event reaches NATS."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid

import httpx
import nats

from crm.customers.v1 import events_pb2
from crm_cli.main import run as crm
from crm_customers.domain.tax_id import uscc_check_char


def _tax_id(n: int) -> str:
    body = f"9144{uuid.uuid4().int % 10**9:09d}{n:04d}"
    return body + uscc_check_char(body)


async def test_cli_import_with_owners_then_duplicates_and_merge(suite, sign_in, eventually, tmp_path):
    manager = sign_in("chen.jie")       # Sales East manager: team scope
    rep = sign_in("li.wei")             # in the manager's team
    stem = f"迁移{uuid.uuid4().hex[:6]}精密模具"
    rows = [["客户名称", "统一社会信用代码", "地区", "联系人", "手机", "负责人"],
            [f"{stem}有限公司", _tax_id(1), "广东", "王五", "13800138001", "li.wei"],
            [f"{stem}股份有限公司", "", "广东", "赵六", "13800138002", ""],   # the old system's copy, no tax ID
            [f"{stem}(东莞)有限公司", _tax_id(3), "广东", "", "", "wang.fang"],   # Sales West: out of scope
            [f"{stem}贸易公司", _tax_id(4), "广东", "", "", "no.such.user"]]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path = tmp_path / "历史客户.csv"
    path.write_bytes(out.getvalue().encode("gbk"))

    printed = io.StringIO()
    code = await asyncio.to_thread(crm, ["--api-url", suite.gateway_url, "--token", manager.token, "--quiet",
                                         "import", "customers", str(path)], out=printed)
    report = printed.getvalue()
    assert code == 0, report
    assert "would be 2 created, 0 updated, 0 skipped, 0 flagged, 2 rejected" in report
    assert "done: 2 created" in report
    errors = list(csv.reader(io.StringIO((tmp_path / "历史客户.errors.csv").read_text(encoding="utf-8-sig"))))
    reasons = {row[0]: row[-1] for row in errors[1:]}
    assert "data scope" in reasons[f"{stem}(东莞)有限公司"]
    assert "no.such.user" in reasons[f"{stem}贸易公司"]

    async with httpx.AsyncClient(base_url=suite.gateway_url, headers=manager.headers, timeout=30) as api:
        listed = (await api.get("/api/v1/customers", params={"name": stem})).json()["items"]
        owners = {c["name"]: c["owner_id"] for c in listed}
        assert owners == {f"{stem}有限公司": rep.id, f"{stem}股份有限公司": manager.id}
        first = next(c for c in listed if c["owner_id"] == rep.id)
        second = next(c for c in listed if c["owner_id"] == manager.id)

        pairs = (await api.get("/api/v1/customers/duplicates", params={"customer_id": first["id"]})).json()["items"]
        assert [p["second"]["id"] for p in pairs] == [second["id"]] and pairs[0]["name_similarity"] == 1.0

        nc = await nats.connect(suite.nats_url)
        merged_events: list[events_pb2.CustomersMerged] = []

        async def on_merged(msg: nats.aio.msg.Msg) -> None:
            merged_events.append(events_pb2.CustomersMerged.FromString(msg.data))

        sub = await nc.subscribe("crm.customers.customer.merged", cb=on_merged)
        await nc.flush()  # subscribed at the server before the requests below
        r = await api.post(f"/api/v1/customers/{first['id']}/merge", json={"merged_id": second["id"]})
        assert r.status_code == 200, r.text
        assert r.json()["moved_contacts"] == 1
        await eventually(lambda: asyncio.sleep(0, any(e.merged_id == second["id"] for e in merged_events)),
                         what="customer.merged on NATS")
        event = next(e for e in merged_events if e.merged_id == second["id"])
        assert event.surviving_id == first["id"] and len(event.moved_contact_ids) == 1
        await sub.unsubscribe()
        await nc.drain()
        contacts = (await api.get(f"/api/v1/customers/{first['id']}/contacts")).json()
        items = contacts["items"] if isinstance(contacts, dict) else contacts
        assert {c["name"] for c in items} == {"王五", "赵六"}
