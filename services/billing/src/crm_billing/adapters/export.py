"""A statement as a PDF (reportlab; Chinese in the built-in CID font STSong-Light, so no font file
ships with the image) or an Excel workbook (openpyxl). Amounts are written as they are stored:
decimal strings in the PDF, numbers with a two-place format in Excel."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.engine import Row

FONT = "STSong-Light"
PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KIND_LABELS = {"invoice": "发票 Invoice", "payment": "回款 Payment", "credit_note": "红字/贷项 Credit note",
               "reversal": "冲销 Reversal"}
STATUS_LABELS = {"draft": "草稿 draft", "issued": "已发出 issued", "confirmed": "已确认 confirmed",
                 "disputed": "有异议 disputed", "resolved": "异议已处理 resolved"}


def _registered() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _amount(value: Any) -> str:
    return f"{Decimal(value):,.2f}"


def filename(statement: Row[Any], fmt: str) -> str:
    return f"{statement.statement_number}.{fmt}"


def to_pdf(statement: Row[Any], lines: list[Row[Any]]) -> bytes:
    font = _registered()
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=20, spaceAfter=6)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=f"对账单 {statement.statement_number}")
    c = statement.currency
    story: list[Any] = [
        Paragraph(f"对账单 Statement of account {statement.statement_number}", title),
        Paragraph(f"客户 Customer: {statement.customer_name or statement.customer_id}", body),
        Paragraph(f"期间 Period: {statement.period_start} — {statement.period_end}　币种 Currency: {c}", body),
        Paragraph(f"状态 Status: {STATUS_LABELS.get(statement.status, statement.status)}", body),
        Spacer(1, 6 * mm),
    ]
    rows: list[list[Any]] = [["#", "日期 Date", "类型 Kind", "单号 Document", "说明 Description", f"金额 Amount ({c})",
                              "异议 Dispute"]]
    rows.append(["", "", "", "", "期初余额 Opening balance", _amount(statement.opening_balance), ""])
    for li in lines:
        rows.append([str(li.position), li.document_date.isoformat(), KIND_LABELS.get(li.kind, li.kind),
                     li.document_number, Paragraph(li.description, body), _amount(li.amount),
                     Paragraph(li.dispute_reason + (f" → {li.resolution}" if li.resolution else ""), body)])
    for label, value in (("本期发票 Invoices", statement.invoices), ("本期回款 Payments", -Decimal(statement.payments)),
                         ("调整 Adjustments", statement.adjustments),
                         ("期末余额 Closing balance", statement.closing_balance)):
        rows.append(["", "", "", "", label, _amount(value), ""])
    table = Table(rows, colWidths=[8 * mm, 20 * mm, 26 * mm, 28 * mm, 46 * mm, 26 * mm, 26 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey), ("ALIGN", (5, 0), (5, -1), "RIGHT"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story += [table, Spacer(1, 8 * mm),
              Paragraph("请核对后签章确认；如有异议，请逐行注明原因。 Please confirm, or state a reason for each "
                        "line you dispute.", body)]
    doc.build(story)
    return out.getvalue()


def to_xlsx(statement: Row[Any], lines: list[Row[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "对账单"
    bold = Font(bold=True)
    money_format = "#,##0.00"
    for row in (("对账单 Statement", statement.statement_number),
                ("客户 Customer", statement.customer_name or str(statement.customer_id)),
                ("期间 Period", f"{statement.period_start} — {statement.period_end}"),
                ("币种 Currency", statement.currency), ("状态 Status", statement.status)):
        ws.append(list(row))
        ws.cell(ws.max_row, 1).font = bold
    ws.append([])
    ws.append(["#", "日期 Date", "类型 Kind", "单号 Document", "说明 Description", "金额 Amount", "异议 Dispute",
               "处理 Resolution"])
    for cell in ws[ws.max_row]:
        cell.font = bold
    ws.append(["", "", "", "", "期初余额 Opening balance", Decimal(statement.opening_balance)])
    for li in lines:
        ws.append([li.position, li.document_date, KIND_LABELS.get(li.kind, li.kind), li.document_number,
                   li.description, Decimal(li.amount), li.dispute_reason, li.resolution])
    for label, value in (("本期发票 Invoices", statement.invoices), ("本期回款 Payments", -Decimal(statement.payments)),
                         ("调整 Adjustments", statement.adjustments),
                         ("期末余额 Closing balance", statement.closing_balance)):
        ws.append(["", "", "", "", label, Decimal(value)])
        ws.cell(ws.max_row, 5).font = bold
    for row in ws.iter_rows(min_col=6, max_col=6):
        for cell in row:
            cell.number_format = money_format
    for column, width in zip("ABCDEFGH", (6, 12, 20, 18, 36, 16, 30, 30), strict=True):
        ws.column_dimensions[column].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
