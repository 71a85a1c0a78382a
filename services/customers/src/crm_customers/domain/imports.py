"""Bulk import of customers with their contacts (R-CUS-03): reading a CSV or .xlsx file, mapping
its columns to fields, and turning each row into a normalised customer (and contact) or the
reasons it is rejected. Pure: no database, no I/O beyond the bytes handed in.

Decisions (docs/services/customers.md, "Bulk import"):
- One row is one customer and at most one contact. A row whose dedup key repeats an earlier row
  of the same file is rejected naming that row.
- An industry that is not on the normalised list (by code, English or Chinese name, ignoring case
  and full-/half-width) rejects the row with a reason naming the value: it lands in the error
  file, is never silently dropped, and is imported once an administrator adds the industry or the
  value is corrected.
- A cell starting with `=` or `@`, or with `+`/`-` followed by anything other than a number or a
  phone number, is a formula (spreadsheet formula injection); so is any formula cell of an .xlsx.
  The row is rejected, the rest of the file goes on.
- Whole-file problems (not CSV/Excel, unreadable encoding, no header, too many rows, a cell
  beyond the CSV parser's field limit) refuse the file with one clear InvalidArgument.
- The optional owner column (a login or a user id) is kept as typed here; the import resolves it
  against the org chart and checks the importer may assign to that owner.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import BinaryIO

from crm_customers.domain.model import (
    Address,
    AddressKind,
    Contact,
    Customer,
    CustomerStatus,
    Origin,
    normalise_contact,
    normalise_customer,
)
from crm_customers.domain.text import clean
from crmkit.errors import InvalidArgument

MAX_ROWS = 200_000
MAX_CELL_CHARS = 2_000
# An .xlsx is a zip: refuse one that inflates beyond this (a zip bomb) before parsing it.
MAX_XLSX_INFLATED_BYTES = 256 * 1024 * 1024


class DedupKey(StrEnum):
    TAX_ID = "tax_id"
    NAME_REGION = "name_region"


class OnMatch(StrEnum):
    SKIP = "skip"
    UPDATE = "update"
    FLAG = "flag"


# The fields a column can map to, in template order.
FIELDS: tuple[str, ...] = (
    "name", "tax_id", "origin", "industry", "region", "status", "tags", "address",
    "contact_name", "contact_title", "contact_phone", "contact_email", "contact_wechat", "owner",
)
CUSTOMER_FIELDS = frozenset({"name", "tax_id", "origin", "industry", "region", "status", "tags", "address"})

# Default header aliases (compared after clean() and casefold()): Chinese and English.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("客户名称", "名称", "公司名称", "企业名称", "客户", "name", "customer name", "customer", "company"),
    "tax_id": ("统一社会信用代码", "信用代码", "税号", "纳税人识别号", "tax_id", "tax id", "uscc",
               "unified social credit code"),
    "origin": ("境内外", "国内外", "内外资", "origin", "domestic/foreign"),
    "industry": ("行业", "所属行业", "industry"),
    "region": ("地区", "区域", "省份", "region", "area"),
    "status": ("状态", "经营状态", "登记状态", "status"),
    "tags": ("标签", "tags", "tag"),
    "address": ("地址", "注册地址", "address"),
    "contact_name": ("联系人", "联系人姓名", "contact_name", "contact", "contact name"),
    "contact_title": ("职务", "职位", "联系人职务", "contact_title", "title", "contact title"),
    "contact_phone": ("手机", "电话", "手机号", "联系电话", "联系人电话", "contact_phone", "phone", "mobile",
                      "contact phone"),
    "contact_email": ("邮箱", "电子邮箱", "联系人邮箱", "email", "e-mail", "contact_email", "contact email"),
    "contact_wechat": ("微信", "微信号", "wechat", "contact_wechat"),
    # A login or a user id; resolved by the import against the org chart (app/imports.py).
    "owner": ("负责人", "销售负责人", "归属销售", "owner", "owner login"),
}
# The template's header: Chinese name / field name, so both kinds of user recognise it.
TEMPLATE_HEADER: tuple[str, ...] = tuple(HEADER_ALIASES[f][0] for f in FIELDS)

_STATUS = {
    "active": CustomerStatus.ACTIVE, "存续": CustomerStatus.ACTIVE, "在业": CustomerStatus.ACTIVE,
    "开业": CustomerStatus.ACTIVE, "正常": CustomerStatus.ACTIVE,
    "changed": CustomerStatus.CHANGED, "变更": CustomerStatus.CHANGED, "已变更": CustomerStatus.CHANGED,
    "deregistered": CustomerStatus.DEREGISTERED, "注销": CustomerStatus.DEREGISTERED,
    "已注销": CustomerStatus.DEREGISTERED, "吊销": CustomerStatus.DEREGISTERED,
}
_ORIGIN = {
    "domestic": Origin.DOMESTIC, "国内": Origin.DOMESTIC, "境内": Origin.DOMESTIC, "内资": Origin.DOMESTIC,
    "foreign": Origin.FOREIGN, "国外": Origin.FOREIGN, "境外": Origin.FOREIGN, "外资": Origin.FOREIGN,
    "海外": Origin.FOREIGN,
}
_SPLIT = re.compile(r"[,;，；、/\n]+")
# `+86 138 0013 8000`, `-12.5`: a sign followed by a number or phone number is data, not a formula.
_SIGNED_NUMBER = re.compile(r"^[+-][\d\s().\-]*\d[\d\s().\-]*$")


def _key(text: str) -> str:
    return clean(text).casefold()


# File reading ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    value: str
    formula: bool = False


def file_kind(data: bytes) -> str:
    """'xlsx' or 'csv'; anything else is refused with a message the user can act on."""
    if not data.strip():
        raise InvalidArgument.of("file", "is empty")
    if data.startswith(b"PK\x03\x04"):
        return "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidArgument.of("file", "is an old .xls workbook; save it as .xlsx or CSV and upload again")
    if b"\x00" in data[:4096]:
        raise InvalidArgument.of("file", "is not a CSV or Excel (.xlsx) file")
    return "csv"


ENCODINGS = ("utf-8-sig", "gb18030")
_READ = 1 << 20


def detect_encoding(file: BinaryIO) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK, what Excel on Chinese Windows
    writes): the whole file is checked, a megabyte at a time, so a bad byte deep in a big file
    refuses it before any row is read, without holding the file in memory."""
    for encoding in ENCODINGS:
        file.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            while chunk := file.read(_READ):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        file.seek(0)
        return encoding
    raise InvalidArgument.of("file", "is not a CSV or Excel (.xlsx) file: its text is neither UTF-8 nor GBK")


def decode_csv(data: bytes) -> str:
    return data.decode(detect_encoding(io.BytesIO(data)))


def _too_many(max_rows: int) -> InvalidArgument:
    return InvalidArgument.of("file", f"has more than {max_rows} rows; split it into several files")


def _csv_rows(file: BinaryIO, max_rows: int | None = None) -> Iterator[list[Cell]]:
    encoding = detect_encoding(file)
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    try:
        sample = text.read(4096)
        text.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(text, delimiter=delimiter)
        try:
            if max_rows is not None:
                # A cheap first pass (no cleaning, no validation): a file far over the limit is
                # refused in a second or two instead of after the limit's worth of rows.
                if sum(1 for row in reader if any(v.strip() for v in row)) > max_rows + 1:
                    raise _too_many(max_rows)
                text.seek(0)
                reader = csv.reader(text, delimiter=delimiter)
            for row in reader:
                yield [Cell(v, formula=looks_like_formula(v)) for v in row]
        except csv.Error as exc:
            raise InvalidArgument.of("file", f"line {reader.line_num}: {exc}; the CSV is malformed or a cell "
                                             "is far too long") from None
    finally:
        text.detach()  # the caller owns the file


def looks_like_formula(value: str) -> bool:
    v = value.lstrip(" \t\r\n")
    if not v:
        return False
    if v[0] in "=@":
        return True
    return v[0] in "+-" and not _SIGNED_NUMBER.match(v)


def _xlsx_rows(file: BinaryIO, max_rows: int | None = None) -> Iterator[list[Cell]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(file) as archive:
            if sum(i.file_size for i in archive.infolist()) > MAX_XLSX_INFLATED_BYTES:
                raise InvalidArgument.of("file", "the workbook is too large once unpacked")
        file.seek(0)
        # read_only: the sheet's XML is parsed as it is iterated, never loaded whole.
        workbook = load_workbook(file, read_only=True, data_only=False)
    except InvalidArgument:
        raise
    except Exception:  # openpyxl raises a zoo of exceptions on a broken file
        raise InvalidArgument.of("file", "is not a readable Excel (.xlsx) workbook") from None
    try:
        sheet = workbook.worksheets[0]
        # The sheet's declared dimension: a workbook far over the limit is refused before reading.
        if max_rows is not None and (sheet.max_row or 0) > max_rows + 1 + 1000:
            raise _too_many(max_rows)
        for row in sheet.iter_rows():
            cells = []
            for cell in row:
                value = getattr(cell, "value", None)
                formula = getattr(cell, "data_type", "") == "f" or (isinstance(value, str) and value.startswith("="))
                cells.append(Cell(_cell_text(value), formula=formula))
            yield cells
    except InvalidArgument:
        raise
    except Exception:
        raise InvalidArgument.of("file", "is not a readable Excel (.xlsx) workbook") from None
    finally:
        workbook.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number comes back as 13800138000.0
    return str(value)


def read_rows(source: bytes | BinaryIO, max_rows: int | None = None) -> Iterator[list[Cell]]:
    """Every row of the file (the first sheet of a workbook), as cells, read as they are
    iterated: `source` may be a seekable binary file of any size. With `max_rows`, a file with
    clearly more data rows is refused before the first row is yielded."""
    file = io.BytesIO(source) if isinstance(source, bytes) else source
    file.seek(0)
    head = file.read(64 * 1024)
    file.seek(0)
    return _xlsx_rows(file, max_rows) if file_kind(head) == "xlsx" else _csv_rows(file, max_rows)


# Header mapping -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnMap:
    fields: dict[int, str]          # column index -> field
    ignored: tuple[str, ...]        # headers that map to nothing


def map_header(header: list[Cell], mapping: Mapping[str, str] | None = None) -> ColumnMap:
    """`mapping` (header text -> field, or "" to ignore a column) overrides the default aliases."""
    explicit = {_key(k): v for k, v in (mapping or {}).items()}
    for target in explicit.values():
        if target and target not in FIELDS:
            raise InvalidArgument.of("mapping", f"unknown field {target!r}; fields are {', '.join(FIELDS)}")
    aliases = {_key(alias): f for f, names in HEADER_ALIASES.items() for alias in names}
    fields: dict[int, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(header):
        title = _key(cell.value)
        if not title:
            continue
        target = explicit[title] if title in explicit else aliases.get(title, "")
        if not target:
            ignored.append(clean(cell.value))
            continue
        if target in fields.values():
            raise InvalidArgument.of("file", f"two columns map to {target}; map one of them elsewhere or to nothing")
        fields[index] = target
    if "name" not in fields.values():
        raise InvalidArgument.of(
            "file", "no header row with a customer name column: the first row must name the columns, e.g. "
                    f"{', '.join(TEMPLATE_HEADER[:4])} (download the template)")
    return ColumnMap(fields, tuple(ignored))


# Rows -----------------------------------------------------------------------------------------

class IndustryIndex:
    """Industry names as people type them -> the normalised code (R-CUS-01)."""

    def __init__(self, industries: Iterable[tuple[str, str, str]]) -> None:
        self._codes: dict[str, str] = {}
        for code, name, name_zh in industries:
            for alias in (code, name, name_zh):
                if alias:
                    self._codes.setdefault(_key(alias), code)

    def code_of(self, value: str) -> str | None:
        return self._codes.get(_key(value))


@dataclass(frozen=True)
class ImportRow:
    """One data row: `line` is its line in the file (1 = the header); `raw` its cells by field."""

    line: int
    raw: dict[str, str]
    customer: Customer | None = None
    contact: Contact | None = None
    reasons: tuple[str, ...] = ()
    present: frozenset[str] = field(default_factory=frozenset)   # customer fields the row fills in

    @property
    def valid(self) -> bool:
        return not self.reasons and self.customer is not None


def dedup_key(customer: Customer, key: DedupKey) -> str:
    if key == DedupKey.TAX_ID:
        return customer.tax_id
    return f"{customer.name.casefold()}\x1f{customer.region.casefold()}"


def parse_row(line: int, cells: list[Cell], columns: ColumnMap, industries: IndustryIndex, *,
              owner_id: str, team_id: str, department_path: str, created_by: str) -> ImportRow:
    raw: dict[str, str] = {}
    reasons: list[str] = []
    for index, target in columns.fields.items():
        cell = cells[index] if index < len(cells) else Cell("")
        if cell.formula:
            reasons.append(f"{target}: contains a formula; paste values only")
            raw[target] = cell.value[:MAX_CELL_CHARS]
            continue
        if len(cell.value) > MAX_CELL_CHARS:
            reasons.append(f"{target}: is longer than {MAX_CELL_CHARS} characters")
            raw[target] = cell.value[:MAX_CELL_CHARS]
            continue
        raw[target] = cell.value
    if reasons:
        return ImportRow(line, raw, reasons=tuple(reasons))
    value = {f: clean(raw.get(f, "")) for f in FIELDS}
    present = frozenset(f for f in CUSTOMER_FIELDS if value[f])

    origin = Origin.DOMESTIC
    if value["origin"]:
        origin = _ORIGIN.get(value["origin"].casefold())  # type: ignore[assignment]
        if origin is None:
            reasons.append(f"origin: {value['origin']!r} is not domestic/foreign (国内/国外)")
            origin = Origin.DOMESTIC
    status = CustomerStatus.ACTIVE
    if value["status"]:
        status = _STATUS.get(value["status"].casefold())  # type: ignore[assignment]
        if status is None:
            reasons.append(f"status: {value['status']!r} is not one of active, changed, deregistered "
                           "(存续, 变更, 注销)")
            status = CustomerStatus.ACTIVE
    industry = ""
    if value["industry"]:
        industry = industries.code_of(value["industry"]) or ""
        if not industry:
            reasons.append(f"industry: {value['industry']!r} is not on the industry list; correct it or have "
                           "an administrator add it (GET /api/v1/industries)")
    tags = tuple(t for t in _SPLIT.split(value["tags"]) if t.strip()) if value["tags"] else ()
    addresses = ()
    if value["address"]:
        addresses = (Address(kind=AddressKind.REGISTERED, line=value["address"]),)
    customer: Customer | None = None
    try:
        customer = normalise_customer(Customer(
            id=uuid.uuid4(), name=value["name"], tax_id=value["tax_id"], origin=origin, industry=industry,
            region=value["region"], status=status, tags=tags, addresses=addresses, owner_id=owner_id,
            team_id=team_id, department_path=department_path, created_by=created_by))
    except InvalidArgument as exc:
        reasons.extend(f"{v.field}: {v.description}" for v in exc.violations)
    contact: Contact | None = None
    contact_values = [value[f] for f in FIELDS if f.startswith("contact_")]
    if any(contact_values):
        phones = tuple(p for p in _SPLIT.split(value["contact_phone"]) if p.strip()) \
            if value["contact_phone"] else ()
        try:
            contact = normalise_contact(Contact(
                id=uuid.uuid4(), customer_id=customer.id if customer else uuid.uuid4(),
                name=value["contact_name"], title=value["contact_title"], phones=phones,
                email=value["contact_email"], wechat=value["contact_wechat"], is_key=True))
        except InvalidArgument as exc:
            reasons.extend(f"contact {v.field}: {v.description}" for v in exc.violations)
    if reasons:
        return ImportRow(line, raw, reasons=tuple(reasons))
    return ImportRow(line, raw, customer=customer, contact=contact, present=present)


@dataclass
class ParsedFile:
    rows: list[ImportRow]


def iter_rows(source: bytes | BinaryIO, industries: IndustryIndex, *, owner_id: str, team_id: str,
              department_path: str, created_by: str, mapping: Mapping[str, str] | None = None,
              max_rows: int = MAX_ROWS) -> Iterator[ImportRow]:
    """Reads and validates the file's rows one at a time (memory does not grow with the file).
    Repeats of a dedup key within the file are left to the caller (`parse_file` checks them in
    memory; the import checks them in the database). Raises InvalidArgument, possibly after
    rows were yielded, for a file that cannot be imported at all."""
    columns: ColumnMap | None = None
    count = 0
    line = 0
    for cells in read_rows(source, max_rows):
        line += 1
        if not any(c.value.strip() for c in cells):
            continue
        if columns is None:
            columns = map_header(cells, mapping)
            continue
        if count >= max_rows:
            raise _too_many(max_rows)
        count += 1
        yield parse_row(line, cells, columns, industries, owner_id=owner_id, team_id=team_id,
                        department_path=department_path, created_by=created_by)
    if columns is None:
        raise InvalidArgument.of("file", "has no header row and no data")


def parse_file(data: bytes | BinaryIO, industries: IndustryIndex, *, key: DedupKey, owner_id: str, team_id: str,
               department_path: str, created_by: str, mapping: Mapping[str, str] | None = None,
               max_rows: int = MAX_ROWS) -> ParsedFile:
    """Reads and validates every row; repeated keys within the file are rejected. Raises
    InvalidArgument for a file that cannot be imported at all."""
    parsed: list[ImportRow] = []
    seen: dict[str, int] = {}
    for row in iter_rows(data, industries, owner_id=owner_id, team_id=team_id, department_path=department_path,
                         created_by=created_by, mapping=mapping, max_rows=max_rows):
        if row.valid and row.customer is not None:
            k = dedup_key(row.customer, key)
            if k:
                if k in seen:
                    row = replace(row, customer=None, contact=None,
                                  reasons=(f"the same customer as line {seen[k]} of this file",))
                else:
                    seen[k] = row.line
        parsed.append(row)
    return ParsedFile(parsed)


def template_rows() -> list[list[str]]:
    """The template: the header and one example row."""
    example = ["示例医疗器械有限公司", "91350100M000100Y43", "国内", "医疗器械", "福建", "存续", "重点, OEM",
               "福州市鼓楼区示例路1号", "张三", "采购经理", "13800138000", "zhangsan@example.com", "zhangsan_wx", ""]
    return [list(TEMPLATE_HEADER), example]


def template_csv() -> bytes:
    """The template as CSV: UTF-8 with a BOM, which Excel needs to show Chinese."""
    out = io.StringIO()
    csv.writer(out).writerows(template_rows())
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def template_xlsx() -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "customers"
    for row in template_rows():
        sheet.append(row)
    for cell in sheet[2]:
        cell.number_format = "@"  # text, so a phone or tax ID is never turned into a number
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
