"""The contract document (R-CON-01) as a PDF, rendered with reportlab. Chinese and English both
render: text is set in reportlab's built-in CID font STSong-Light (Adobe-GB1), which every PDF
reader provides, so nothing is embedded and no font file ships with the service."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from crm_contracts.domain.model import Contract

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

_BODY = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=14, wordWrap="CJK")
_TITLE = ParagraphStyle("title", parent=_BODY, fontSize=16, leading=22, spaceAfter=6)
_HEAD = ParagraphStyle("head", parent=_BODY, fontSize=11, leading=16, spaceBefore=8, spaceAfter=4)


def _p(text: str, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _table(rows: list[list[str]], widths: list[float]) -> Table:
    table = Table([[_p(cell) for cell in row] for row in rows], colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def render(c: Contract) -> bytes:
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=f"{c.number} {c.title}".strip(), author="CRM",
                            subject="Sales contract 销售合同")
    t = c.totals
    story = [
        _p(f"销售合同 Sales Contract  {c.number}", _TITLE),
        _p(c.title) if c.title else Spacer(1, 0),
        _p(f"客户 Customer: {c.customer_name or c.customer_id}"),
        _p(f"版本 Version: {c.version}    状态 Status: {c.status.value}"),
        _p(f"期限 Term: {c.start_date or '—'} – {c.end_date or '—'}    签订日期 Signed: {c.sign_date or '—'}"),
        _p("明细 Lines", _HEAD),
        _table([["产品 Product", "规格 Specification", "数量 Qty", "单价 Unit price", "折扣 Disc. %", "税率 Tax %",
                 "金额 Amount"]]
               + [[li.product, li.specification, f"{li.quantity} {li.unit}", f"{li.unit_price}",
                   f"{li.discount_percent}", f"{li.tax_rate_percent}", f"{li.amount:.2f}"] for li in c.lines],
               [34 * mm, 40 * mm, 18 * mm, 22 * mm, 16 * mm, 16 * mm, 28 * mm]),
        Spacer(1, 4 * mm),
        _p(f"不含税 Net: {t.net:.2f} {c.currency}    税额 Tax: {t.tax:.2f} {c.currency}    "
           f"合同金额 Amount: {t.gross:.2f} {c.currency}"),
        _p("回款计划 Receivable plan", _HEAD),
        _table([["#", "到期日 Due date", "金额 Amount", "说明 Label"]]
               + [[str(i.sequence), i.due_date.isoformat(), f"{i.amount:.2f} {c.currency}", i.label]
                  for i in c.instalments], [12 * mm, 40 * mm, 50 * mm, 72 * mm]),
    ]
    doc.build(story)
    return buffer.getvalue()
