"""Notification templates in Chinese and English (R-NOT-03), rendered with Jinja2.

A template is chosen by the rule's `kind` and the recipient's locale (identity's `locale`; zh-CN
when it is empty or unknown). The event is passed as `e` (its protobuf fields by name, money as
{amount, currency}). Titles and bodies are plain text (clients escape them); the HTML email part
is rendered with autoescape, so an event field can never inject markup. A kind without its own
template gets the generic one, so a rule can be written for any event subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Environment, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_LOCALE = "zh-CN"


@dataclass(frozen=True)
class Template:
    title: str
    body: str
    link: str = ""


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    link: str
    html: str
    locale: str


_MONEY = "{{ e.amount.amount }} {{ e.amount.currency }}"
TEMPLATES: dict[str, dict[str, Template]] = {
    "approval.waiting": {
        "zh-CN": Template("待审批：合同 {{ e.contract_number }}",
                          "合同 {{ e.contract_number }} 的审批步骤「{{ e.step_name }}」等待您处理，金额 " + _MONEY
                          + "{% if e.due_time %}，请于 {{ e.due_time }} 前处理{% endif %}。",
                          "/api/v1/contracts/{{ e.contract_id }}"),
        "en": Template("Approval waiting: contract {{ e.contract_number }}",
                       'Step "{{ e.step_name }}" of contract {{ e.contract_number }} ({{ e.amount.amount }} '
                       "{{ e.amount.currency }}) waits for your decision{% if e.due_time %}, due {{ e.due_time }}"
                       "{% endif %}.",
                       "/api/v1/contracts/{{ e.contract_id }}"),
    },
    "approval.overdue": {
        "zh-CN": Template("审批已超时：合同 {{ e.contract_number }}",
                          "合同 {{ e.contract_number }} 的审批已超过期限（{{ e.due_time }}），请尽快处理。",
                          "/api/v1/contracts/{{ e.contract_id }}"),
        "en": Template("Approval overdue: contract {{ e.contract_number }}",
                       "The approval of contract {{ e.contract_number }} was due {{ e.due_time }}; please decide.",
                       "/api/v1/contracts/{{ e.contract_id }}"),
    },
    "approval.decided": {
        "zh-CN": Template("审批结果：合同 {{ e.contract_number }}",
                          "合同 {{ e.contract_number }} 的审批结果：{{ {'approved': '已批准', 'rejected': '已驳回', "
                          "'returned': '已退回'}.get(e.decision, e.decision) }}"
                          "{% if e.reason %}（{{ e.reason }}）{% endif %}。",
                          "/api/v1/contracts/{{ e.contract_id }}"),
        "en": Template("Approval decided: contract {{ e.contract_number }}",
                       "Contract {{ e.contract_number }} was {{ e.decision }}{% if e.reason %}: {{ e.reason }}"
                       "{% endif %}.",
                       "/api/v1/contracts/{{ e.contract_id }}"),
    },
    "contract.expiring": {
        "zh-CN": Template("合同即将到期：{{ e.contract_number }}",
                          "合同 {{ e.contract_number }} 将于 {{ e.end_date }} 到期，请跟进续约。",
                          "/api/v1/contracts/{{ e.contract_id }}"),
        "en": Template("Contract expiring: {{ e.contract_number }}",
                       "Contract {{ e.contract_number }} ends on {{ e.end_date }}; time to talk about renewal.",
                       "/api/v1/contracts/{{ e.contract_id }}"),
    },
    "payment.overdue": {
        "zh-CN": Template("回款逾期：发票 {{ e.invoice_number }}",
                          "发票 {{ e.invoice_number }} 已逾期 {{ e.days_overdue }} 天（到期日 {{ e.due_on }}），"
                          "未收金额 {{ e.outstanding.amount }} {{ e.outstanding.currency }}。",
                          "/api/v1/invoices/{{ e.invoice_id }}"),
        "en": Template("Payment overdue: invoice {{ e.invoice_number }}",
                       "Invoice {{ e.invoice_number }} is {{ e.days_overdue }} days overdue (due {{ e.due_on }}); "
                       "{{ e.outstanding.amount }} {{ e.outstanding.currency }} outstanding.",
                       "/api/v1/invoices/{{ e.invoice_id }}"),
    },
    "statement.disputed": {
        "zh-CN": Template("对账单有异议：{{ e.statement_number }}",
                          "客户对对账单 {{ e.statement_number }} 的 {{ e.disputed_lines }} 行提出异议"
                          "{% if e.reasons %}：{{ e.reasons | join('；') }}{% endif %}。",
                          "/api/v1/statements/{{ e.statement_id }}"),
        "en": Template("Statement disputed: {{ e.statement_number }}",
                       "The customer disputes {{ e.disputed_lines }} line(s) of statement {{ e.statement_number }}"
                       "{% if e.reasons %}: {{ e.reasons | join('; ') }}{% endif %}.",
                       "/api/v1/statements/{{ e.statement_id }}"),
    },
    "customer.reassigned": {
        "zh-CN": Template("客户已转交：{{ e.customer.name }}",
                          "客户 {{ e.customer.name }} 的负责人已变更，请查看客户资料与跟进记录。",
                          "/api/v1/customers/{{ e.customer.id }}"),
        "en": Template("Customer reassigned: {{ e.customer.name }}",
                       "Customer {{ e.customer.name }} has a new owner; see its record and follow-ups.",
                       "/api/v1/customers/{{ e.customer.id }}"),
    },
    "sync.failed": {
        "zh-CN": Template("SAP 同步失败：{{ e.record_kind }} {{ e.crm_id }}",
                          "{{ e.record_kind }} {{ e.crm_id }} 同步到 SAP 失败（第 {{ e.attempts }} 次）：{{ e.error }}"
                          "{% if e.parked %}。记录已挂起，等待运维处理。{% endif %}",
                          "/api/v1/integrations/sap/sync-records?crm_id={{ e.crm_id }}"),
        "en": Template("SAP sync failed: {{ e.record_kind }} {{ e.crm_id }}",
                       "{{ e.record_kind }} {{ e.crm_id }} failed to sync to SAP (attempt {{ e.attempts }}): "
                       "{{ e.error }}{% if e.parked %}. The record is parked for an operator.{% endif %}",
                       "/api/v1/integrations/sap/sync-records?crm_id={{ e.crm_id }}"),
    },
}
GENERIC: dict[str, Template] = {
    "zh-CN": Template("通知：{{ kind }}", "事件 {{ subject }}：{% for k, v in e.items() %}{{ k }}={{ v }}"
                      "{% if not loop.last %}，{% endif %}{% endfor %}"),
    "en": Template("Notification: {{ kind }}", "Event {{ subject }}: {% for k, v in e.items() %}{{ k }}={{ v }}"
                   "{% if not loop.last %}, {% endif %}{% endfor %}"),
}
_HTML = """<!doctype html><html lang="{{ locale }}"><body>
<h2>{{ title }}</h2><p>{{ body }}</p>
{% if link %}<p><a href="{{ base_url }}{{ link }}">{{ base_url }}{{ link }}</a></p>{% endif %}
</body></html>"""
_DIGEST_TITLE = {"zh-CN": "今日通知摘要（{{ count }} 条）", "en": "Your daily digest ({{ count }})"}

# Plain-text parts: no escaping (they are text, not markup). Sandboxed: templates only read data.
_text = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
_html = Environment(undefined=ChainableUndefined, autoescape=select_autoescape(default=True, default_for_string=True))


def locale_of(value: str) -> str:
    """identity's BCP 47 locale → a template language: en*, otherwise Chinese."""
    return "en" if value.lower().startswith("en") else DEFAULT_LOCALE


def render(kind: str, subject: str, data: dict[str, Any], locale: str, base_url: str = "") -> Rendered:
    lang = locale_of(locale)
    template = TEMPLATES.get(kind, GENERIC)[lang]
    context = {"e": data, "kind": kind, "subject": subject}
    title = _text.from_string(template.title).render(context).strip()
    body = _text.from_string(template.body).render(context).strip()
    link = _text.from_string(template.link).render(context).strip() if template.link else ""
    html = _html.from_string(_HTML).render(title=title, body=body, link=link, base_url=base_url, locale=lang)
    return Rendered(title=title, body=body, link=link, html=html, locale=lang)


def render_digest(items: list[Rendered], locale: str, base_url: str = "") -> Rendered:
    lang = locale_of(locale)
    title = _text.from_string(_DIGEST_TITLE[lang]).render(count=len(items))
    body = "\n\n".join(f"• {i.title}\n{i.body}" for i in items)
    html = _html.from_string(
        '<!doctype html><html lang="{{ lang }}"><body><h2>{{ title }}</h2><ul>{% for i in items %}'
        '<li><strong>{{ i.title }}</strong><br>{{ i.body }}{% if i.link %} '
        '<a href="{{ base_url }}{{ i.link }}">→</a>{% endif %}</li>{% endfor %}</ul></body></html>',
    ).render(lang=lang, title=title, items=items, base_url=base_url)
    return Rendered(title=title, body=body, link="", html=html, locale=lang)
