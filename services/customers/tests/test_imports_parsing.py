"""Reading and validating import files (R-CUS-03): pure, no database."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import Workbook

from crm_customers.domain.imports import (
    MAX_CELL_CHARS,
    DedupKey,
    IndustryIndex,
    decode_csv,
    file_kind,
    iter_rows,
    parse_file,
    read_rows,
    template_rows,
)
from crm_customers.domain.industries import DEFAULT_INDUSTRIES
from crm_customers.domain.model import CustomerStatus, Origin
from crm_customers.domain.tax_id import uscc_check_char
from crmkit.errors import InvalidArgument

INDUSTRIES = IndustryIndex(DEFAULT_INDUSTRIES)


def uscc(n: int) -> str:
    prefix = f"913501{n:011d}"
    return prefix + uscc_check_char(prefix)


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def parse(data: bytes, key: DedupKey = DedupKey.TAX_ID, **kw):
    return parse_file(data, INDUSTRIES, key=key, owner_id="u1", team_id="t1", department_path="/east",
                      created_by="u1", **kw)


HEADER = ["客户名称", "统一社会信用代码", "行业", "地区", "状态", "联系人", "手机", "邮箱"]
ROW = ["华东医疗器械有限公司", uscc(1), "医疗器械", "上海", "存续", "张三", "13800138000", "zs@example.com"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_utf8_with_or_without_bom_and_gbk_reads_the_same(encoding):
    parsed = parse(csv_bytes([HEADER, ROW], encoding))
    [row] = parsed.rows
    assert row.valid, row.reasons
    assert row.customer.name == "华东医疗器械有限公司"
    assert row.customer.industry == "medical_devices"
    assert row.customer.status == CustomerStatus.ACTIVE
    assert row.customer.owner_id == "u1" and row.customer.team_id == "t1"
    assert row.contact.phones == ("+8613800138000",)
    assert row.contact.email == "zs@example.com"


def test_xlsx_reads_like_csv_and_numbers_become_text():
    row = list(ROW)
    row[6] = 13800138000  # typed as a number in Excel
    parsed = parse(xlsx_bytes([HEADER, row]))
    [r] = parsed.rows
    assert r.valid, r.reasons
    assert r.contact.phones == ("+8613800138000",)


def test_english_headers_and_full_width_and_whitespace_are_cleaned():
    full_width_tax_id = uscc(2).replace("9", "９")
    data = csv_bytes([["Name", "Tax ID", "Industry", "Region", "Origin"],
                      ["  Ａｃｍｅ　Ｍｅｄｉｃａｌ  ", full_width_tax_id, "MEDICAL DEVICES", " 福建 ", "境内"]])
    [r] = parse(data).rows
    assert r.valid, r.reasons
    assert r.customer.name == "Acme Medical"
    assert r.customer.tax_id == uscc(2)
    assert r.customer.industry == "medical_devices"
    assert r.customer.region == "福建"
    assert r.customer.origin == Origin.DOMESTIC


def test_every_problem_of_a_row_is_reported_and_other_rows_still_parse():
    bad_tax = uscc(3)[:-1] + ("0" if uscc(3)[-1] != "0" else "1")
    data = csv_bytes([HEADER, ROW, ["", bad_tax, "造船", "", "营业中", "李四", "12345", "not-an-email"]])
    good, bad = parse(data).rows
    assert good.valid
    assert not bad.valid and bad.line == 3
    text = " | ".join(bad.reasons)
    assert "name: is required" in text
    assert "check digit" in text
    assert "'造船' is not on the industry list" in text
    assert "'营业中'" in text
    assert "contact phones[0]" in text
    assert "contact email" in text
    assert bad.raw["industry"] == "造船"  # kept for the error file


def test_explicit_mapping_overrides_aliases():
    data = csv_bytes([["公司", "代码", "随便"], ["甲公司", uscc(4), "x"]])
    parsed = parse(data, mapping={"公司": "name", "代码": "tax_id", "随便": ""})
    [r] = parsed.rows
    assert r.valid and r.customer.tax_id == uscc(4)
    with pytest.raises(InvalidArgument, match="unknown field"):
        parse(data, mapping={"公司": "nom"})


def test_missing_header_is_a_clear_error():
    with pytest.raises(InvalidArgument, match="no header row"):
        parse(csv_bytes([["甲公司", uscc(5)], ["乙公司", uscc(6)]]))


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3+cmd"])
def test_formula_cells_in_csv_reject_the_row(cell):
    data = csv_bytes([HEADER, ROW, ["乙公司", uscc(7), "", "", "", "", "", ""], [cell, uscc(8)]])
    rows = parse(data).rows
    assert [r.valid for r in rows] == [True, True, False]
    assert "contains a formula" in rows[2].reasons[0]


def test_signed_numbers_and_international_phones_are_not_formulas():
    data = csv_bytes([HEADER, ["甲公司", uscc(9), "", "", "", "Tom", "+49 30 901820", ""]])
    [r] = parse(data).rows
    assert r.valid, r.reasons
    assert r.contact.phones == ("+4930901820",)


def test_xlsx_formula_cells_reject_the_row():
    data = xlsx_bytes([HEADER, ["甲公司", "=CONCAT(\"9135\",\"01\")"]])
    [r] = parse(data).rows
    assert not r.valid and "formula" in r.reasons[0]


def test_oversized_cells_reject_the_row_and_a_giant_cell_refuses_the_file():
    data = csv_bytes([HEADER, ["甲" * (MAX_CELL_CHARS + 1), uscc(10)]])
    [r] = parse(data).rows
    assert "longer than" in r.reasons[0]
    giant = b"name\n" + b"x" * (10 * 1024 * 1024) + b"\n"
    with pytest.raises(InvalidArgument, match="line"):
        parse(giant)


def test_too_many_rows_refuses_the_file():
    rows = [["name"]] + [[f"公司{i}"] for i in range(6)]
    with pytest.raises(InvalidArgument, match="more than 5 rows"):
        parse(csv_bytes(rows), max_rows=5)


def test_not_csv_or_excel_is_refused():
    with pytest.raises(InvalidArgument, match="not a CSV"):
        file_kind(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(InvalidArgument, match=r"\.xls"):
        file_kind(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(InvalidArgument, match="Excel"):
        list(read_rows(b"PK\x03\x04garbage"))
    with pytest.raises(InvalidArgument, match="empty"):
        file_kind(b"   ")
    with pytest.raises(InvalidArgument, match="neither UTF-8 nor GBK"):
        decode_csv(b"\xff\xfe\xff\xfe\x81\x20")


def test_repeated_key_in_the_file_is_rejected_naming_the_first_line():
    data = csv_bytes([HEADER, ROW, ROW])
    first, second = parse(data).rows
    assert first.valid
    assert second.reasons == ("the same customer as line 2 of this file",)
    by_name = csv_bytes([["名称", "地区"], ["甲公司", "上海"], ["甲公司", "北京"], ["甲公司", "上海"]])
    assert [r.valid for r in parse(by_name, DedupKey.NAME_REGION).rows] == [True, True, False]


def test_tags_and_address_and_foreign_origin():
    data = csv_bytes([["name", "tax_id", "origin", "tags", "address"],
                      ["Acme GmbH", "DE123456789", "foreign", "VIP;OEM", "Berlin"]])
    [r] = parse(data).rows
    assert r.valid, r.reasons
    assert r.customer.origin == Origin.FOREIGN
    assert r.customer.tags == ("OEM", "VIP")
    assert r.customer.addresses[0].line == "Berlin"


def test_template_parses_cleanly():
    [r] = parse(csv_bytes(template_rows())).rows
    assert r.valid, r.reasons


def test_template_files_round_trip():
    from crm_customers.domain.imports import template_csv, template_xlsx

    assert template_csv().startswith(b"\xef\xbb\xbf")
    for data in (template_csv(), template_xlsx()):
        [r] = parse(data).rows
        assert r.valid, r.reasons


def test_a_million_rows_are_refused_before_any_row_is_validated(monkeypatch):
    from crm_customers.domain import imports

    validated = 0
    original = imports.parse_row

    def counting(*args, **kwargs):
        nonlocal validated
        validated += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(imports, "parse_row", counting)
    data = b"name\n" + b"".join(b"c%d\n" % i for i in range(1_000_000))
    rows = iter_rows(data, INDUSTRIES, owner_id="u1", team_id="t1", department_path="/", created_by="u1")
    with pytest.raises(InvalidArgument, match="more than 200000 rows"):
        next(rows)
    assert validated == 0
