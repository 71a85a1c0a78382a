"""Bulk import use cases against a real PostgreSQL (R-CUS-03): dry run, commit, resume, revert."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from sqlalchemy import func, select, text

from crm_customers.adapters.tables import import_rows
from crm_customers.app import imports as im
from crm_customers.app import use_cases as uc
from crm_customers.domain.tax_id import uscc_check_char
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.testing.principals import EAST_REP, FINANCE, WEST_REP

pytestmark = pytest.mark.integration


def uscc(n: int) -> str:
    prefix = f"913502{n:011d}"
    return prefix + uscc_check_char(prefix)


def csv_file(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


HEADER = ["客户名称", "统一社会信用代码", "行业", "地区", "联系人", "手机"]


async def test_dry_run_reports_and_writes_nothing_then_commit_applies_valid_rows(call, counts, outbox):
    existing = await call(EAST_REP, uc.create_customer, {"name": "老客户", "tax_id": uscc(1), "region": "上海"})
    before = await counts()
    data = csv_file([HEADER,
                     ["新客户甲", uscc(2), "医疗器械", "福建", "张三", "13800138000"],
                     ["老客户（新名）", uscc(1), "电子", "上海", "", ""],
                     ["坏行", "123", "造船", "", "", ""],
                     ["新客户乙", uscc(3), "", "", "", ""]], "gbk")
    job, report = await call(EAST_REP, im.start_import, data, file_name="old.csv", key="tax_id", on_match="update")
    assert job.status == "dry_run" and job.total == 4
    assert job.planned == {"create": 2, "update": 1, "skip": 0, "flag": 0, "reject": 1}
    rejected = [r for r in report if r.outcome == "reject"]
    assert [r.line for r in rejected] == [4]
    assert any("造船" in reason for reason in rejected[0].reasons)
    after_dry_run = await counts()
    assert {k: after_dry_run[k] for k in ("customers", "contacts", "outbox")} == \
        {k: before[k] for k in ("customers", "contacts", "outbox")}

    done = await call(EAST_REP, im.commit_import, job.id)
    assert done.status == "done" and done.processed == 4
    assert done.counts == {"created": 2, "updated": 1, "rejected": 1}
    listed, _ = await call(EAST_REP, uc.list_customers, page_token="", limit=50, order_by="name")
    names = {c.name for c in listed}
    assert names == {"新客户甲", "新客户乙", "老客户(新名)"}
    updated = await call(EAST_REP, uc.get_customer, existing.id)
    assert updated.industry == "electronics" and updated.version == 2
    types = [r.type.rsplit(".", 1)[1] for r in await outbox()]
    assert types.count("CustomerCreated") == 3 and types.count("CustomerUpdated") == 1
    assert types.count("ContactAdded") == 1

    # Idempotent: committing again changes nothing.
    again = await call(EAST_REP, im.commit_import, job.id)
    assert again.counts == done.counts
    assert (await counts())["customers"] == 3

    errors = list(im.error_file_rows(await call(EAST_REP, im.list_issues, job.id)))
    assert errors[0][-1] == "原因/reason"
    assert len(errors) == 2 and errors[1][0] == "坏行" and "check digit" not in errors[1][-1]
    assert "造船" in errors[1][-1]

    reverted = await call(EAST_REP, im.revert_import, job.id)
    assert reverted.status == "reverted"
    listed, _ = await call(EAST_REP, uc.list_customers, page_token="", limit=50, order_by="name")
    assert [c.name for c in listed] == ["老客户"]
    restored = await call(EAST_REP, uc.get_customer, existing.id)
    assert restored.industry == "" and restored.name == "老客户" and restored.version == 3
    types = [r.type.rsplit(".", 1)[1] for r in await outbox()]
    assert types.count("CustomerDeleted") == 2
    with pytest.raises(Conflict):
        await call(EAST_REP, im.commit_import, job.id)


async def test_skip_and_flag_and_name_region_key(call, counts):
    await call(EAST_REP, uc.create_customer, {"name": "甲公司", "region": "上海"})
    data = csv_file([["名称", "地区"], ["甲公司", "上海"], ["甲公司", "北京"]])
    job, report = await call(EAST_REP, im.start_import, data, key="name_region", on_match="flag")
    assert job.planned["flag"] == 1 and job.planned["create"] == 1
    assert "review it by hand" in report[0].reasons[0]
    done = await call(EAST_REP, im.commit_import, job.id)
    assert done.counts == {"created": 1, "flagged": 1}
    job2, _ = await call(EAST_REP, im.start_import, data, key="name_region", on_match="skip")
    assert job2.planned["skip"] == 2


async def test_a_match_outside_the_callers_scope_is_never_updated_or_named(call):
    theirs = await call(WEST_REP, uc.create_customer, {"name": "西部客户", "tax_id": uscc(5)})
    data = csv_file([["name", "tax_id"], ["改名", uscc(5)]])
    job, report = await call(EAST_REP, im.start_import, data, on_match="update")
    assert job.planned["reject"] == 1
    assert "another team" in report[0].reasons[0] and str(theirs.id) not in report[0].reasons[0]


async def test_commit_resumes_after_the_last_committed_batch(call, sessions, monkeypatch):
    monkeypatch.setattr(im, "BATCH", 2)
    rows = [["name", "tax_id"]] + [[f"公司{i}", uscc(100 + i)] for i in range(5)]
    job, _ = await call(EAST_REP, im.start_import, csv_file(rows))
    # Simulate a crash in the second batch: the first stays committed, the import stays running.
    original = im._apply_batch
    calls = 0

    async def crash_in_the_second_batch(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("worker died")
        return await original(*args, **kwargs)

    monkeypatch.setattr(im, "_apply_batch", crash_in_the_second_batch)
    with pytest.raises(RuntimeError):
        await call(EAST_REP, im.commit_import, job.id)
    monkeypatch.setattr(im, "_apply_batch", original)
    async with sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM customers")) == 2
        status = await s.scalar(text("SELECT status FROM imports WHERE id = :id"), {"id": job.id})
        assert status == "running"
    done = await call(EAST_REP, im.commit_import, job.id)
    assert done.status == "done" and done.counts == {"created": 5} and done.processed == 5
    async with sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM customers")) == 5
        assert await s.scalar(select(func.count()).where(import_rows.c.import_id == job.id,
                                                         import_rows.c.applied.is_(False))) == 0


async def test_rows_are_re_checked_at_commit(call):
    data = csv_file([["name", "tax_id"], ["后来者", uscc(7)]])
    job, _ = await call(EAST_REP, im.start_import, data, on_match="skip")
    assert job.planned["create"] == 1
    await call(EAST_REP, uc.create_customer, {"name": "抢先者", "tax_id": uscc(7)})
    done = await call(EAST_REP, im.commit_import, job.id)
    assert done.counts == {"skipped": 1}


async def test_imports_belong_to_their_creator_and_bad_files_write_nothing(call, counts):
    job, _ = await call(EAST_REP, im.start_import, csv_file([["name"], ["甲"]]))
    with pytest.raises(NotFound):
        await call(WEST_REP, im.get_import, job.id)
    with pytest.raises(NotFound):
        await call(WEST_REP, im.commit_import, job.id)
    before = await counts()
    with pytest.raises(InvalidArgument, match="no header row"):
        await call(EAST_REP, im.start_import, csv_file([["甲公司", uscc(8)]]))
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, im.start_import, b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(InvalidArgument, match="dedup key"):
        await call(EAST_REP, im.start_import, csv_file([["name"], ["甲"]]), key="email")
    with pytest.raises(PermissionDenied):
        await call(FINANCE, im.start_import, csv_file([["name"], ["甲"]]))
    assert await counts() == before
    with pytest.raises(Conflict):
        await call(EAST_REP, im.revert_import, job.id)
    with pytest.raises(NotFound):
        await call(EAST_REP, im.get_import, uuid.uuid4())


async def test_sensitive_cells_are_sealed_at_rest(call, sessions):
    job, _ = await call(EAST_REP, im.start_import, csv_file([["name", "tax_id", "phone"],
                                                             ["甲", uscc(9), "13800138000"]]))
    async with sessions() as s:
        data = await s.scalar(text("SELECT data FROM import_rows WHERE import_id = :id"), {"id": job.id})
    assert data.startswith("enc:") and uscc(9) not in data


async def test_revert_restores_what_it_can_when_the_old_tax_id_was_taken_meanwhile(call):
    existing = await call(EAST_REP, uc.create_customer, {"name": "丙公司", "region": "上海", "tax_id": uscc(20)})
    data = csv_file([["名称", "地区", "税号", "行业"], ["丙公司", "上海", uscc(21), "化工"]])
    job, _ = await call(EAST_REP, im.start_import, data, key="name_region", on_match="update")
    await call(EAST_REP, im.commit_import, job.id)
    updated = await call(EAST_REP, uc.get_customer, existing.id)
    assert (updated.tax_id, updated.industry) == (uscc(21), "chemicals")
    await call(EAST_REP, uc.create_customer, {"name": "后来者", "tax_id": uscc(20)})
    assert (await call(EAST_REP, im.revert_import, job.id)).status == "reverted"
    restored = await call(EAST_REP, uc.get_customer, existing.id)
    assert (restored.tax_id, restored.industry) == (uscc(21), "")
