"""The web console (web/) in a real browser against the started suite: Debian's Chromium driven by
Playwright, the console served by the gateway at `/` from web/dist (`make web-check` builds it).

A rep signs in, finds a customer, logs a follow-up, meets a duplicate tax ID and signs out; a
manager approves a contract on a 375×812 phone; another team's rep opening the first rep's
customer by URL sees "not found". axe-core checks every page visited for serious or critical
violations. Screenshots (desktop and phone) are kept in the test's base temp directory."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Response, async_playwright, expect

from crm_customers.domain.tax_id import uscc_check_char
from crm_devstack import Suite

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 375, "height": 812}
PASSWORD = "Lingbo-demo-2026"  # crm_devstack.demo.DEMO_PASSWORD
# What a first visit may download, gzip: React, antd's core and the shell.
FIRST_VISIT_JS_BUDGET = 350 * 1024


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots", numbered=False)


async def _page(browser: Browser, suite: Suite, viewport: dict[str, int], locale: str = "zh-CN") -> Page:
    # bypass_csp: axe-core is injected as an inline script, which the console's CSP refuses.
    context = await browser.new_context(base_url=suite.gateway_url, viewport=viewport, locale=locale,
                                        bypass_csp=True, is_mobile=viewport == PHONE, has_touch=viewport == PHONE)
    return await context.new_page()


async def _sign_in(page: Page, login: str) -> None:
    await page.goto("/")
    await expect(page).to_have_url(_at("/sign-in"))
    await page.get_by_label("用户名").fill(login)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登 录").or_(page.get_by_role("button", name="登录")).click()
    await expect(page).not_to_have_url(_at("/sign-in"))


async def _accessible(page: Page, where: str) -> None:
    """axe-core: no serious or critical violation on the page once it has loaded."""
    await expect(page.locator(".ant-spin-spinning, .ant-skeleton")).to_have_count(0)
    # antd's enter animations fade from transparent: judge colours once they have finished
    await expect(page.locator("[class*='-appear-active'], [class*='-enter-active']")).to_have_count(0)
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [(n["target"], n["failureSummary"]) for n in v["nodes"]][:3])
           for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{where}: {bad}"


def _at(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(path) + "$")


def _tax_id() -> str:
    first17 = "91330100" + "".join(random.choice("0123456789") for _ in range(9))
    return first17 + uscc_check_char(first17)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_rep_finds_a_customer_logs_a_follow_up_and_signs_out(suite: Suite, sign_in: Callable, browser: Browser,
                                                                      shots: Path) -> None:
    rep = sign_in("li.wei")
    suffix = uuid.uuid4().hex[:6]
    tax_id = _tax_id()
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        customer = _created(await api.post("/api/v1/customers", headers=rep.headers, json={
            "name": f"宁波精密管件 {suffix}", "tax_id": tax_id, "region": "Zhejiang"}))

    page = await _page(browser, suite, DESKTOP)
    scripts: list[Response] = []
    page.on("response", lambda r: scripts.append(r) if r.request.resource_type == "script" else None)
    await _sign_in(page, "li.wei")
    # R-UX-03: a rep lands on their day
    await expect(page).to_have_url(_at("/my-day"))
    await expect(page.get_by_role("heading", name="我的今日")).to_be_visible()
    # the JavaScript of the visit so far (sign-in page, shell, my day), as gzip would send it
    first_visit = [len(gzip.compress(await r.body(), 9)) for r in scripts]
    (shots / "first-visit-js.txt").write_text(f"{len(first_visit)} scripts, {sum(first_visit)} bytes gzip\n")
    assert 0 < sum(first_visit) < FIRST_VISIT_JS_BUDGET, first_visit
    await _accessible(page, "my day")
    # the refresh token is in an HttpOnly cookie; nothing long-lived is readable by scripts
    readable = await page.evaluate("[document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]")
    assert not any("crmr" in value for value in readable), readable

    await page.get_by_role("link", name="客户").first.click()
    await page.get_by_label("客户名称").fill(suffix)
    await page.get_by_role("button", name="搜 索").or_(page.get_by_role("button", name="搜索")).click()
    await page.get_by_role("link", name=customer["name"]).click()
    await expect(page).to_have_url(_at(f"/customers/{customer['id']}"))
    await expect(page.get_by_role("heading", name=customer["name"])).to_be_visible()
    await _accessible(page, "customer page")
    await page.screenshot(path=shots / "customer-desktop.png", full_page=True)

    await page.get_by_role("button", name="写跟进").click()
    await page.get_by_text("拜访", exact=True).click()
    await _accessible(page, "follow-up form")
    summary = f"拜访了采购部 确认 2027 年需求 {suffix}"
    await page.get_by_label("跟进内容").fill(summary)
    await page.get_by_role("button", name="保 存").or_(page.get_by_role("button", name="保存")).click()
    await expect(page).to_have_url(_at(f"/customers/{customer['id']}"))
    await expect(page.get_by_text(summary)).to_be_visible()
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        timeline = (await api.get(f"/api/v1/customers/{customer['id']}/follow-ups", headers=rep.headers)).json()
    assert [(f["kind"], f["summary"]) for f in timeline["items"]] == [("visit", summary)]

    # a reload keeps the person signed in (the cookie brings a new access token)
    tokens: list[str] = []
    page.on("request", lambda r: tokens.append(r.headers.get("authorization", "")) if "/api/v1/" in r.url else None)
    await page.reload()
    await expect(page.get_by_text(summary)).to_be_visible()

    # an access token refused mid-session (revoked here; expired alike) is replaced without a word
    old = next(t for t in reversed(tokens) if t.startswith("Bearer "))
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        assert (await api.post("/api/v1/auth/revoke", headers={"Authorization": old})).status_code == 200
        assert (await api.get("/api/v1/me", headers={"Authorization": old})).status_code == 401
    await page.get_by_role("tab", name="联系人").click()
    await page.get_by_role("link", name="客户").first.click()
    await expect(page.get_by_role("link", name=customer["name"])).to_be_visible()
    assert tokens[-1] != old and tokens[-1].startswith("Bearer ")
    await expect(page.locator(".ant-message-error, .ant-alert-error")).to_have_count(0)

    # someone else changes the customer while it is being edited: 412, and a reload is offered
    await page.goto(f"/customers/{customer['id']}/edit")
    await expect(page.get_by_label("客户名称")).to_have_value(customer["name"])
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        changed = await api.patch(f"/api/v1/customers/{customer['id']}", headers=rep.headers,
                                  json={"region": "Ningbo"})
        assert changed.status_code == 200, changed.text
    await page.get_by_label("客户名称").fill(f"{customer['name']} 有限公司")
    await page.get_by_role("button", name="保 存").or_(page.get_by_role("button", name="保存")).click()
    await expect(page.get_by_text("该记录已被他人修改，请刷新后重试")).to_be_visible()
    await _accessible(page, "a stale edit")
    await page.get_by_role("button", name="刷 新").or_(page.get_by_role("button", name="刷新")).click()
    await expect(page.get_by_text("该记录已被他人修改，请刷新后重试")).to_have_count(0)

    # R-UX-01: only the name is required; a duplicate tax ID names the customer that has it
    await page.goto("/customers/new")
    await page.get_by_label("客户名称").fill(f"宁波精密管件（重复）{suffix}")
    await page.get_by_label("统一社会信用代码").fill(tax_id)
    await page.get_by_role("button", name="保 存").or_(page.get_by_role("button", name="保存")).click()
    # on the field and above the form, with a link to the existing customer
    await expect(page.get_by_text(f"该统一社会信用代码已被客户「{customer['name']}」使用")).to_have_count(2)
    await expect(page.get_by_role("link", name="查看该客户")).to_have_attribute("href", f"/customers/{customer['id']}")
    await _accessible(page, "new customer form with a duplicate tax ID")
    await page.screenshot(path=shots / "duplicate-tax-id-desktop.png")

    await page.get_by_role("button", name="li.wei").or_(page.get_by_role("button", name="Li Wei")).click()
    await page.get_by_text("退出登录").click()
    await expect(page).to_have_url(_at("/sign-in"))
    await page.goto(f"/customers/{customer['id']}")
    await expect(page).to_have_url(_at(f"/sign-in?next=%2Fcustomers%2F{customer['id']}"))
    await page.context.close()


async def _contract_waiting_for(suite: Suite, rep: Any, eventually: Callable) -> dict[str, Any]:
    """li.wei's contract submitted for approval: the demo rule asks chen.jie (manager) first."""
    suffix = uuid.uuid4().hex[:6]
    today = dt.date.today()
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        customer = _created(await api.post("/api/v1/customers", headers=rep.headers, json={
            "name": f"Shaoxing Valve Works {suffix}", "region": "Zhejiang"}))
        opportunity = _created(await api.post("/api/v1/opportunities", headers=rep.headers, json={
            "customer_id": customer["id"], "name": f"Valves 2027 {suffix}",
            "amount": {"amount": "50000", "currency": "CNY"}}))
        quote = _created(await api.post("/api/v1/quotes", headers=rep.headers, json={
            "opportunity_id": opportunity["id"], "valid_until": (today + dt.timedelta(days=14)).isoformat(),
            "lines": [{"product": "Valve DN50", "specification": "316L", "quantity": "50", "unit_price": "1000",
                       "discount_percent": "0", "tax_rate_percent": "13"}]}))
        assert (await api.post(f"/api/v1/quotes/{quote['id']}/send", headers=rep.headers)).status_code == 200
        assert (await api.post(f"/api/v1/quotes/{quote['id']}/accept", headers=rep.headers)).status_code == 200

        async def drafted() -> dict | None:
            page = await api.get("/api/v1/contracts", headers=rep.headers, params={"customer_id": customer["id"]})
            return next((c for c in page.json()["items"] if c["quote_id"] == quote["id"]), None)

        contract = await eventually(drafted, what="the contract drafted from the accepted quote")
        url = f"/api/v1/contracts/{contract['id']}"
        term = await api.patch(url, headers=rep.headers, json={
            "start_date": today.isoformat(), "end_date": (today + dt.timedelta(days=364)).isoformat()})
        assert term.status_code == 200, term.text
        plan = await api.put(f"{url}/receivable-plan", headers=rep.headers, json={"instalments": [
            {"due_date": today.isoformat(), "amount": "56500.00", "label": "on signing"}]})
        assert plan.status_code == 200, plan.text
        submitted = await api.post(f"{url}/submit", headers=rep.headers)
        assert submitted.status_code == 200, submitted.text
        return contract


async def test_a_manager_approves_on_a_phone(suite: Suite, sign_in: Callable, eventually: Callable, browser: Browser,
                                             shots: Path) -> None:
    rep, manager = sign_in("li.wei"), sign_in("chen.jie")
    contract = await _contract_waiting_for(suite, rep, eventually)

    page = await _page(browser, suite, PHONE)
    await _sign_in(page, "chen.jie")
    await expect(page).to_have_url(_at("/dashboard"))  # R-UX-03: managers land on the dashboard
    await expect(page.get_by_role("heading", name="销售漏斗")).to_be_visible()
    # the contract waiting for them is in their inbox: the bell counts it
    bell = page.get_by_role("button", name=re.compile(r"^消息通知：[1-9]\d* 条未读$"))
    await expect(bell).to_be_visible(timeout=20_000)
    await _accessible(page, "dashboard on a phone")
    await page.screenshot(path=shots / "dashboard-phone.png", full_page=True)

    # the phone's tab bar, not the desktop side menu
    tabs = page.get_by_role("navigation").filter(has=page.get_by_role("link", name="审批"))
    await tabs.get_by_role("link", name="审批").click()
    card = page.locator(".ant-card").filter(has_text=contract["contract_number"])
    await expect(card).to_be_visible()
    await _accessible(page, "approvals on a phone")
    await page.screenshot(path=shots / "approvals-phone.png", full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the approvals page scrolls sideways on a phone: {width}px"

    await card.get_by_role("button", name="同 意").or_(card.get_by_role("button", name="同意")).click()
    await expect(card).to_have_count(0)
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        steps = (await api.get(f"/api/v1/contracts/{contract['id']}/approval-steps", headers=rep.headers)).json()
    manager_step = next(s for s in steps["items"] if s["name"] == "Manager")
    assert (manager_step["state"], manager_step["decided_by"]) == ("approved", manager.id)
    await page.context.close()


async def test_another_teams_rep_cannot_open_the_customer_by_url(suite: Suite, sign_in: Callable, browser: Browser,
                                                                  shots: Path) -> None:
    rep = sign_in("li.wei")  # Sales East
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        customer = _created(await api.post("/api/v1/customers", headers=rep.headers, json={
            "name": f"Jiaxing Pump Co {uuid.uuid4().hex[:6]}"}))

    page = await _page(browser, suite, PHONE)
    await _sign_in(page, "wang.fang")  # Sales West
    await page.goto(f"/customers/{customer['id']}")
    await expect(page.get_by_text("未找到，或不在您的数据权限范围内")).to_be_visible()
    await expect(page.get_by_text(customer["name"])).to_have_count(0)
    await _accessible(page, "a customer out of scope")
    await page.screenshot(path=shots / "not-found-phone.png")
    # and in English
    await page.get_by_role("button", name="Wang Fang").or_(page.get_by_role("button", name="wang.fang")).click()
    await page.get_by_text("English").click()
    await expect(page.get_by_text("Not found, or outside your data scope")).to_be_visible()
    # a page whose permission they lack says which permission is missing
    await page.goto("/sync")
    await expect(page.get_by_text("Not allowed: this needs the permission integrations.read").first).to_be_visible()
    await page.context.close()


async def test_a_rep_converts_a_lead_on_a_phone(suite: Suite, sign_in: Callable, browser: Browser, shots: Path) -> None:
    rep = sign_in("li.wei")
    suffix = uuid.uuid4().hex[:6]
    company = f"温州阀门集团 {suffix}"
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        lead = _created(await api.post("/api/v1/leads", headers=rep.headers, json={
            "name": f"陈经理 {suffix}", "company": company, "phone": "13800138000", "region": "Zhejiang",
            "source": "trade_show", "owner_id": rep.id}))

    page = await _page(browser, suite, PHONE)
    await _sign_in(page, "li.wei")
    await page.goto("/leads")
    card = page.locator(".ant-card").filter(has_text=lead["name"])
    await expect(card).to_be_visible()
    await _accessible(page, "leads on a phone")
    await page.screenshot(path=shots / "leads-phone.png", full_page=True)
    await card.get_by_role("button", name="转 化").or_(card.get_by_role("button", name="转化")).click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("客户名称")).to_have_value(company)
    await dialog.get_by_label("金额 (CNY, 选填)").fill("80000")
    await _accessible(page, "lead conversion on a phone")
    await dialog.get_by_role("button", name="转 化").or_(dialog.get_by_role("button", name="转化")).click()
    await expect(page.get_by_role("heading", name=company)).to_be_visible()
    customer_id = page.url.rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        converted = (await api.get(f"/api/v1/leads/{lead['id']}", headers=rep.headers)).json()
        opportunities = (await api.get("/api/v1/opportunities", headers=rep.headers,
                                       params={"customer_id": customer_id})).json()["items"]
    assert (converted["status"], converted["customer_id"]) == ("converted", customer_id)
    assert [(o["id"], o["amount"]["amount"]) for o in opportunities] == [(converted["opportunity_id"], "80000.00")]

    # the opportunity is on the board, in its first stage; the rep moves it on from the card
    [opportunity] = opportunities
    await page.goto("/opportunities")
    card = page.locator(".ant-card").filter(has_text=opportunity["name"])
    await expect(card).to_be_visible()
    first_stage = page.get_by_role("region", name=await page.locator("section").filter(has=card).get_attribute(
        "aria-label"), exact=True)
    await _accessible(page, "the opportunity board on a phone")
    await page.screenshot(path=shots / "board-phone.png")
    await card.locator(".ant-select").click()
    await page.locator(".ant-select-dropdown:visible .ant-select-item-option").nth(1).click()
    await expect(first_stage.locator(".ant-card").filter(has_text=opportunity["name"])).to_have_count(0)
    await expect(card).to_be_visible()  # in the next column now
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        moved = (await api.get(f"/api/v1/opportunities/{opportunity['id']}", headers=rep.headers)).json()
        history = (await api.get(f"/api/v1/opportunities/{opportunity['id']}/stage-history",
                                 headers=rep.headers)).json()["items"]
    assert moved["stage_id"] != opportunity["stage_id"] and moved["version"] == opportunity["version"] + 1
    assert history[-1]["to_stage_id"] == moved["stage_id"], history
    await page.context.close()
