"""Resumable uploads, imports started from them, and duplicates / merge (R-CUS-03), against a
real PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
from sqlalchemy import select, text

from crm_customers.adapters.tables import customer_merges, customers, import_uploads
from crm_customers.app import imports as im
from crm_customers.app import merge as mg
from crm_customers.app import use_cases as uc
from crm_customers.domain.duplicates import name_key, trigram_text
from crm_customers.domain.model import FollowUpKind
from crm_customers.domain.tax_id import uscc_check_char
from crmkit.errors import Conflict, InvalidArgument, NotFound
from crmkit.testing.principals import EAST_REP, WEST_REP

pytestmark = pytest.mark.integration


def uscc(n: int) -> str:
    prefix = f"913502{n:011d}"
    return prefix + uscc_check_char(prefix)


def csv_file(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


async def upload(call, principal, data: bytes, chunk: int) -> uuid.UUID:
    made = await call(principal, im.create_upload, file_name="big.csv", size=len(data))
    for offset in range(0, len(data), chunk):
        await call(principal, im.append_chunk, made.id, offset, data[offset:offset + chunk])
    return made.id


# Uploads -------------------------------------------------------------------------------------

async def test_an_interrupted_upload_resumes_from_the_received_offset(call, sessions):
    data = csv_file([["名称", "统一社会信用代码"]] + [[f"上传公司{i}", uscc(300 + i)] for i in range(40)], "gbk")
    made = await call(EAST_REP, im.create_upload, file_name="客户.csv", size=len(data))
    first = await call(EAST_REP, im.append_chunk, made.id, 0, data[:100])
    assert first.received == 100 and not first.complete
    # The answer to the second chunk is "lost": the client sends it again, then asks where it is.
    await call(EAST_REP, im.append_chunk, made.id, 100, data[100:250])
    again = await call(EAST_REP, im.append_chunk, made.id, 100, data[100:250])
    assert again.received == 250
    with pytest.raises(Conflict) as skipped:
        await call(EAST_REP, im.append_chunk, made.id, 300, data[300:400])
    assert skipped.value.reason == "UPLOAD_OFFSET_MISMATCH" and skipped.value.metadata == {"received": "250"}
    resume_at = (await call(EAST_REP, im.get_upload, made.id)).received
    with pytest.raises(Conflict, match="send the rest") as early:
        await call(EAST_REP, im.start_import_from_upload, made.id)
    assert early.value.reason == "UPLOAD_INCOMPLETE"
    done = await call(EAST_REP, im.append_chunk, made.id, resume_at, data[resume_at:])
    assert done.complete and done.received == len(data)
    with pytest.raises(InvalidArgument, match="outside"):
        await call(EAST_REP, im.append_chunk, made.id, len(data), b"x")
    # Someone else's upload does not exist for them.
    with pytest.raises(NotFound):
        await call(WEST_REP, im.get_upload, made.id)

    job = await call(EAST_REP, im.start_import_from_upload, made.id, key="tax_id", on_match="skip")
    assert job.status == "validating" and job.file_name == "客户.csv"
    with pytest.raises(Conflict, match="validating"):
        await call(EAST_REP, im.commit_import, job.id)
    checked = await call(EAST_REP, im.run_upload_dry_run, job.id)
    assert checked.status == "dry_run" and checked.total == 40 and checked.planned["create"] == 40
    async with sessions() as s:  # the upload is dropped once read
        assert await s.scalar(select(import_uploads.c.id).where(import_uploads.c.id == made.id)) is None
    committed = await call(EAST_REP, im.commit_import, job.id)
    assert committed.status == "done" and committed.counts == {"created": 40}


async def test_an_upload_that_is_no_import_file_is_refused_with_the_reason_and_leaves_nothing(call, sessions,
                                                                                               monkeypatch):
    cases = {
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00": "not a CSV",
        csv_file([["甲公司", uscc(1)], ["乙公司", uscc(2)]]): "no header row",
        b"name\n" + b"x" * (10 * 1024 * 1024) + b"\n": "line 2",
        csv_file([["名称"]] + [[f"公司{i}"] for i in range(12)]): "more than 10 rows",
    }
    monkeypatch.setattr(im, "MAX_ROWS", 10)
    for data, reason in cases.items():
        upload_id = await upload(call, EAST_REP, data, chunk=im.MAX_CHUNK_BYTES)
        job = await call(EAST_REP, im.start_import_from_upload, upload_id)
        refused = await call(EAST_REP, im.run_upload_dry_run, job.id, max_rows=10)
        assert refused.status == "refused" and reason in refused.error, (reason, refused.error)
        async with sessions() as s:
            rows = await s.scalar(text("SELECT count(*) FROM import_rows WHERE import_id = :id"), {"id": job.id})
            assert rows == 0
        with pytest.raises(Conflict, match="refused"):
            await call(EAST_REP, im.commit_import, job.id)


async def test_upload_sizes_are_bounded_and_open_uploads_are_capped(call):
    with pytest.raises(InvalidArgument, match="size"):
        await call(EAST_REP, im.create_upload, file_name="x.csv", size=im.MAX_UPLOAD_BYTES + 1)
    made = await call(EAST_REP, im.create_upload, file_name="x.csv", size=10)
    with pytest.raises(InvalidArgument, match="larger than"):
        await call(EAST_REP, im.append_chunk, made.id, 0, b"x" * (im.MAX_CHUNK_BYTES + 1))
    for _ in range(im.MAX_OPEN_UPLOADS - 1):
        await call(EAST_REP, im.create_upload, file_name="x.csv", size=10)
    with pytest.raises(Conflict) as capped:
        await call(EAST_REP, im.create_upload, file_name="x.csv", size=10)
    assert capped.value.reason == "TOO_MANY_UPLOADS"


async def test_repeats_within_a_big_file_are_found_across_batches(call, monkeypatch):
    monkeypatch.setattr(im, "BATCH", 3)
    rows = [["名称", "统一社会信用代码"]] + [[f"批次公司{i}", uscc(500 + i)] for i in range(7)]
    rows.append(["批次公司重复", uscc(501)])   # line 9 repeats line 3's tax ID, two batches later
    job, report = await call(EAST_REP, im.start_import, csv_file(rows))
    assert job.planned == {"create": 7, "update": 0, "skip": 0, "flag": 0, "reject": 1}
    assert [(r.line, r.reasons) for r in report] == [(9, ("the same customer as line 3 of this file",))]


# Duplicates and merge -------------------------------------------------------------------------

NAMES = ["上海医疗器械有限公司", "上海医疗器械股份有限公司", "ACME Co., Ltd.", "Acme Inc.", "Princeton Labs",
         "福建（示例）医疗 集团", "Foo-Bar GmbH", "  Mixed 中文 Name ", "深圳市华为技术有限公司", "unlimited inc"]


async def test_the_name_key_rules_are_the_same_in_python_and_in_the_database(call, sessions):
    for name in NAMES:
        await call(EAST_REP, uc.create_customer, {"name": name})
    async with sessions() as s:
        rows = (await s.execute(select(customers.c.name, customers.c.name_key, customers.c.name_grams))).all()
    assert len(rows) == len(NAMES)
    for name, key, grams in rows:
        assert key == name_key(name), name
        assert grams == trigram_text(key), name
    assert name_key("ACME Co., Ltd.") == "acme" and name_key("Princeton Labs") == "princetonlabs"
    assert name_key("上海医疗器械股份有限公司") == "上海医疗器械"


async def test_similar_names_and_the_callers_scope_make_the_report(call):
    a = await call(EAST_REP, uc.create_customer, {"name": "上海医疗器械有限公司"})
    b = await call(EAST_REP, uc.create_customer, {"name": "上海医疗器械股份有限公司", "region": "上海"})
    c = await call(EAST_REP, uc.create_customer, {"name": "上海医疗器械贸易有限公司"})
    await call(EAST_REP, uc.create_customer, {"name": "北京重型机械厂"})
    theirs = await call(WEST_REP, uc.create_customer, {"name": "上海医疗器械集团"})
    pairs, token = await call(EAST_REP, mg.list_duplicates, min_similarity=0.5)
    found = {frozenset((p.first.id, p.second.id)): p for p in pairs}
    # a and b have the same name key: similarity 1; c adds 贸易 (similar, above 0.5); the west
    # rep's customer is outside the east rep's scope; the machinery works is unrelated.
    assert frozenset((a.id, b.id)) in found and found[frozenset((a.id, b.id))].name_similarity == 1.0
    assert frozenset((a.id, c.id)) in found and frozenset((b.id, c.id)) in found
    assert all(theirs.id not in key for key in found) and len(found) == 3 and token == ""
    # Paging: one pair per page, same pairs in the same order.
    seen, token = [], ""
    while True:
        page, token = await call(EAST_REP, mg.list_duplicates, min_similarity=0.5, page_token=token, limit=1)
        seen += [frozenset((p.first.id, p.second.id)) for p in page]
        if not token:
            break
    assert seen == [frozenset((p.first.id, p.second.id)) for p in pairs]
    # Only one customer's pairs; a dismissed pair leaves the report.
    mine, _ = await call(EAST_REP, mg.list_duplicates, customer_id=c.id)
    assert {p.second.id for p in mine} == {a.id, b.id}
    await call(EAST_REP, mg.dismiss_duplicate, c.id, a.id)
    await call(EAST_REP, mg.dismiss_duplicate, a.id, c.id)  # idempotent
    mine, _ = await call(EAST_REP, mg.list_duplicates, customer_id=c.id)
    assert {p.second.id for p in mine} == {b.id}
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, mg.list_duplicates, min_similarity=0.05)


async def test_a_merge_keeps_everything_of_both_and_tells_everyone(call, sessions, outbox):
    survivor = await call(EAST_REP, uc.create_customer, {"name": "示例医疗器械有限公司", "tags": ["VIP"]})
    merged = await call(EAST_REP, uc.create_customer, {
        "name": "示例医疗器械股份有限公司", "tax_id": uscc(77), "industry": "medical_devices", "region": "福建",
        "tags": ["vip", "OEM"]})
    kept = await call(EAST_REP, uc.add_contact, survivor.id, {"name": "张三", "phones": ("13800138000",)})
    moved = await call(EAST_REP, uc.add_contact, merged.id, {"name": "李四", "phones": ("13900139000",)})
    note = await call(EAST_REP, uc.record_follow_up, merged.id, {
        "kind": FollowUpKind.VISIT, "summary": "拜访", "contact_id": moved.id,
        "occurred_at": dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)})
    events_before = len(await outbox())

    result = await call(EAST_REP, mg.merge_customers, survivor.id, merged.id)
    after = result.customer
    assert after.id == survivor.id and after.name == "示例医疗器械有限公司"   # the survivor's values stand
    assert (after.tax_id, after.industry, after.region) == (uscc(77), "medical_devices", "福建")  # gaps filled
    assert after.tags == ("OEM", "VIP")
    assert set(result.filled_fields) == {"tax_id", "industry", "region", "tags"}
    assert (result.moved_contacts, result.moved_follow_ups) == (1, 1)
    people = await call(EAST_REP, uc.list_contacts, survivor.id)
    assert {p.id for p in people} == {kept.id, moved.id}
    timeline, _ = await call(EAST_REP, uc.list_follow_ups, survivor.id, page_token="", limit=10)
    assert [f.id for f in timeline] == [note.id] and timeline[0].contact_id == moved.id
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_customer, merged.id)
    async with sessions() as s:
        assert await s.scalar(select(customers.c.merged_into).where(customers.c.id == merged.id)) == survivor.id
        record = (await s.execute(select(customer_merges))).one()
        assert (record.surviving_id, record.merged_id, record.merged_by) == (survivor.id, merged.id,
                                                                            EAST_REP.subject)
        assert uscc(77) not in record.before   # before-images are sealed
    events = (await outbox())[events_before:]
    assert [e.subject for e in events] == ["crm.customers.customer.updated", "crm.customers.customer.merged"]
    message = events[1].message()
    assert (message.surviving_id, message.merged_id) == (str(survivor.id), str(merged.id))
    assert list(message.moved_contact_ids) == [str(moved.id)] and list(message.moved_follow_up_ids) == [str(note.id)]
    assert events[1].headers["ce-actor"] == EAST_REP.subject


async def test_a_merge_is_refused_across_tax_ids_or_outside_the_scope(call, counts):
    one = await call(EAST_REP, uc.create_customer, {"name": "甲公司", "tax_id": uscc(1)})
    two = await call(EAST_REP, uc.create_customer, {"name": "甲有限公司", "tax_id": uscc(2)})
    theirs = await call(WEST_REP, uc.create_customer, {"name": "甲集团"})
    before = await counts()
    with pytest.raises(InvalidArgument, match="different tax ID"):
        await call(EAST_REP, mg.merge_customers, one.id, two.id)
    with pytest.raises(NotFound):
        await call(EAST_REP, mg.merge_customers, one.id, theirs.id)
    with pytest.raises(InvalidArgument, match="itself"):
        await call(EAST_REP, mg.merge_customers, one.id, one.id)
    assert await counts() == before


# The owner column --------------------------------------------------------------------------------

class Directory:
    def __init__(self) -> None:
        self.people = {"li.wei": im.Owner("rep-east", "east", "/sales/east/", "li.wei"),
                       "rep-east": im.Owner("rep-east", "east", "/sales/east/", "li.wei"),
                       "wang.fang": im.Owner("rep-west", "west", "/sales/west/", "wang.fang")}
        self.asked: list[set[str]] = []

    async def resolve(self, names: set[str]) -> dict[str, im.Owner | None]:
        self.asked.append(names)
        return {n: self.people.get(n) for n in names}


async def test_the_owner_column_assigns_within_the_importers_scope(call, monkeypatch):
    from crmkit.testing.principals import EAST_MANAGER

    directory = Directory()
    monkeypatch.setattr(im, "_owners", directory)
    data = csv_file([["名称", "统一社会信用代码", "负责人"],
                     ["归属甲", uscc(601), "li.wei"],       # a member of the manager's team
                     ["归属乙", uscc(602), "rep-east"],      # by user id
                     ["归属丙", uscc(603), "wang.fang"],     # another team: outside a team scope
                     ["归属丁", uscc(604), "nobody"],
                     ["归属戊", uscc(605), ""]])             # no owner: the importer
    job, report = await call(EAST_MANAGER, im.start_import, data)
    assert job.planned == {"create": 3, "update": 0, "skip": 0, "flag": 0, "reject": 2}
    reasons = {r.line: r.reasons[0] for r in report}
    assert reasons == {4: "you may not create customers for owner rep-west (data scope)",
                       5: "owner: 'nobody' is not an active user's login or id"}
    assert directory.asked == [{"li.wei", "rep-east", "wang.fang", "nobody"}]
    done = await call(EAST_MANAGER, im.commit_import, job.id)
    assert done.counts == {"created": 3, "rejected": 2}
    listed, _ = await call(EAST_MANAGER, uc.list_customers, page_token="", limit=50, order_by="name")
    owners = {c.name: (c.owner_id, c.team_id) for c in listed}
    assert owners == {"归属甲": ("rep-east", "east"), "归属乙": ("rep-east", "east"), "归属戊": ("mgr-east", "east")}


async def test_an_owner_column_without_an_org_chart_rejects_those_rows_only(call, monkeypatch):
    monkeypatch.setattr(im, "_owners", None)
    data = csv_file([["名称", "owner"], ["无目录甲", "li.wei"], ["无目录乙", ""]])
    job, report = await call(EAST_REP, im.start_import, data)
    assert job.planned["create"] == 1 and [r.line for r in report] == [2]
    assert "cannot be looked up" in report[0].reasons[0]
