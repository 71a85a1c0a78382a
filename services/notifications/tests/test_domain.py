"""Pure rules: signatures, backoff, quiet hours and digests, templates in two languages, rule and
webhook validation (R-NOT-02, R-NOT-03)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import urllib.parse

import pytest

from crm_notifications.domain import model, schedule, signing, templates
from crm_notifications.domain.model import Channel, Preferences, Robot
from crmkit.errors import InvalidArgument

UTC = dt.UTC


def test_webhook_signature_is_hmac_of_timestamp_dot_body() -> None:
    body = b'{"id":"e1"}'
    header = signing.webhook_signature("whsec_k", 1764057600, body)
    expected = hmac.new(b"whsec_k", b'1764057600.{"id":"e1"}', hashlib.sha256).hexdigest()
    assert header == f"t=1764057600,v1={expected}"
    assert signing.verify_webhook_signature("whsec_k", header, body, now=1764057600 + 10)
    assert not signing.verify_webhook_signature("whsec_other", header, body, now=1764057600)
    assert not signing.verify_webhook_signature("whsec_k", header, body + b" ", now=1764057600)
    # a replay ten minutes later is refused
    assert not signing.verify_webhook_signature("whsec_k", header, body, now=1764057600 + 600)
    assert not signing.verify_webhook_signature("whsec_k", "garbage", body, now=1764057600)


def test_dingtalk_url_carries_timestamp_and_urlencoded_sign() -> None:
    url = signing.dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "SECxyz", 1700000000000)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["access_token"] == "abc" and query["timestamp"] == "1700000000000"
    mac = hmac.new(b"SECxyz", b"1700000000000\nSECxyz", hashlib.sha256).digest()
    assert query["sign"] == base64.b64encode(mac).decode()
    # "+", "/" and "=" of base64 are escaped in the URL itself
    assert "sign=" + urllib.parse.quote_plus(base64.b64encode(mac).decode()) in url


def test_feishu_sign_is_hmac_keyed_with_timestamp_and_secret_over_nothing() -> None:
    mac = hmac.new(b"1700000000\nsecret", b"", hashlib.sha256).digest()
    assert signing.feishu_sign("secret", 1700000000) == base64.b64encode(mac).decode()


def test_robot_urls_are_masked() -> None:
    assert signing.mask_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET") == \
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    assert signing.mask_url("https://partner.example/hook") == "https://partner.example/hook"


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [schedule.backoff(n, 30, 200).total_seconds() for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_quiet_hours_over_midnight_hold_until_they_end() -> None:
    prefs = Preferences("u", quiet_start=dt.time(22), quiet_end=dt.time(7), time_zone="Asia/Shanghai")
    # 23:30 in Shanghai (15:30 UTC) → 07:00 next morning Shanghai = 23:00 UTC the same day
    assert schedule.quiet_until(dt.datetime(2026, 11, 25, 15, 30, tzinfo=UTC), prefs) == \
        dt.datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    # 05:00 in Shanghai (21:00 UTC the day before) → 07:00 that morning
    assert schedule.quiet_until(dt.datetime(2026, 11, 24, 21, 0, tzinfo=UTC), prefs) == \
        dt.datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    # 12:00 in Shanghai: not quiet
    assert schedule.quiet_until(dt.datetime(2026, 11, 25, 4, 0, tzinfo=UTC), prefs) is None
    daytime = Preferences("u", quiet_start=dt.time(12), quiet_end=dt.time(14), time_zone="UTC")
    assert schedule.quiet_until(dt.datetime(2026, 11, 25, 13, 0, tzinfo=UTC), daytime) == \
        dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert schedule.quiet_until(dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC), daytime) is None


def test_digest_goes_out_at_the_next_digest_hour() -> None:
    prefs = Preferences("u", daily_digest=True, digest_hour=8, time_zone="Asia/Shanghai")
    # 07:00 Shanghai → 08:00 today (00:00 UTC); 09:00 Shanghai → 08:00 tomorrow
    assert schedule.next_digest(dt.datetime(2026, 11, 24, 23, 0, tzinfo=UTC), prefs) == \
        dt.datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert schedule.next_digest(dt.datetime(2026, 11, 25, 1, 0, tzinfo=UTC), prefs) == \
        dt.datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


APPROVAL = {"contract_id": "c-1", "contract_number": "CON-2026-000123", "step_name": "Finance",
            "amount": {"amount": "120000.00", "currency": "CNY"}, "due_time": "2026-11-27T08:00:00Z",
            "approver_ids": ["u-1"]}


def test_templates_follow_the_recipient_locale() -> None:
    zh = templates.render("approval.waiting", "crm.contracts.approval.step_assigned", APPROVAL, "zh-CN")
    assert zh.title == "待审批：合同 CON-2026-000123"
    assert "「Finance」" in zh.body and "120000.00 CNY" in zh.body
    assert zh.link == "/api/v1/contracts/c-1" and zh.locale == "zh-CN"
    en = templates.render("approval.waiting", "crm.contracts.approval.step_assigned", APPROVAL, "en-GB")
    assert en.title == "Approval waiting: contract CON-2026-000123"
    assert en.body.startswith('Step "Finance" of contract CON-2026-000123 (120000.00 CNY) waits for your decision')
    # an empty or unknown locale reads Chinese
    assert templates.render("approval.waiting", "s", APPROVAL, "").locale == "zh-CN"


def test_html_part_escapes_event_fields_but_text_keeps_them() -> None:
    data = APPROVAL | {"step_name": "<script>alert(1)</script>"}
    out = templates.render("approval.waiting", "crm.contracts.approval.step_assigned", data, "en")
    assert "<script>" in out.body
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html


def test_unknown_kind_gets_the_generic_template() -> None:
    out = templates.render("customer.returned_to_pool", "crm.customers.customer.returned_to_pool",
                           {"customer_id": "k-1", "previous_owner_id": "u-2"}, "en")
    assert out.title == "Notification: customer.returned_to_pool"
    assert out.body == "Event crm.customers.customer.returned_to_pool: customer_id=k-1, previous_owner_id=u-2"


def test_digest_lists_every_item() -> None:
    a = templates.render("contract.expiring", "s", {"contract_number": "CON-1", "end_date": "2027-01-31"}, "en")
    b = templates.render("contract.expiring", "s", {"contract_number": "CON-2", "end_date": "2027-02-28"}, "en")
    digest = templates.render_digest([a, b], "en")
    assert digest.title == "Your daily digest (2)"
    assert "CON-1" in digest.body and "CON-2" in digest.body and digest.html.count("<li>") == 2


def test_rule_validation_names_each_bad_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        model.check_rule("", "contracts.signed", "Bad Kind", ["everyone"],
                         [Robot(Channel.WECOM, "ftp://x", locale="fr")])
    fields = {v.field for v in caught.value.violations}
    assert fields == {"rule.name", "rule.event_subject", "rule.kind", "rule.recipients[0]", "rule.robots[0].url",
                      "rule.robots[0].locale"}
    model.check_rule("ok", "crm.billing.invoice.overdue", "payment.overdue", ["field:owner_id",
                     "manager_of:owner_id", "role:finance"], [])


def test_webhook_types_match_exactly_or_by_prefix() -> None:
    assert model.webhook_matches(["crm.contracts.>"], "crm.contracts.contract.signed")
    assert model.webhook_matches(["crm.billing.invoice.issued"], "crm.billing.invoice.issued")
    assert not model.webhook_matches(["crm.billing.invoice.issued"], "crm.billing.invoice.overdue")
    assert not model.webhook_matches(["crm.contracts.>"], "crm.contractsx.a.b")
    with pytest.raises(InvalidArgument):
        model.check_webhook("https://p.example/h", ["contracts.*"])


def test_preferences_validation() -> None:
    ok = model.check_preferences({"approval.waiting": ["inbox"]}, "22:00", "07:00", "Asia/Shanghai", 8)
    assert ok.channels == {"approval.waiting": (Channel.INBOX,)} and ok.quiet_start == dt.time(22)
    with pytest.raises(InvalidArgument) as caught:
        model.check_preferences({"approval.waiting": ["webhook"]}, "22:00", "", "Mars/Base", 25)
    assert {v.field for v in caught.value.violations} == {
        "preferences.channels[approval.waiting]", "preferences.quiet_end", "preferences.time_zone",
        "preferences.digest_hour"}
