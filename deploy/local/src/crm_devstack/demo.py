"""Demo data for `make dev`: the org chart of a maker of components for medical devices, its
people (who sign in through identity), a partner system, and its customers.

Everything goes through the gateway's public REST API, as a client would: `seed` signs in as
`admin` (the bootstrap password), creates what is missing of the org chart, the demo users and
the partner client `erp`, then signs in as each sales rep and creates the customers they own.
Running it again creates nothing twice: departments, teams and users are looked up by name and
login first, customers are skipped when any exist, and each POST carries a stable Idempotency-Key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

ADMIN_LOGIN = "admin"
# The launcher starts identity with this bootstrap password unless the environment sets another.
ADMIN_PASSWORD_ENV = "CRM_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD"  # noqa: S105 - a variable name
DEFAULT_ADMIN_PASSWORD = "crm-dev-bootstrap-2026"  # noqa: S105 - a development default, documented
# Every demo user's password (identity wants 10+ characters that do not contain the login).
DEMO_PASSWORD = "Lingbo-demo-2026"  # noqa: S105 - demo users, listed in README.md


@dataclass(frozen=True)
class DemoUser:
    login: str
    name: str
    role: str
    department: str
    team: str = ""
    manager: str = ""


DEPARTMENTS = ("Sales", "Finance", "Customer Service", "Marketing")  # under the root, "Company"
TEAMS = {"Sales East": "Sales", "Sales West": "Sales"}
TEAM_LEADS = {"Sales East": "chen.jie", "Sales West": "zhou.qiang"}
DEPARTMENT_HEADS = {"Company": "zhao.min", "Sales": "sun.hao"}
USERS: tuple[DemoUser, ...] = (
    DemoUser("zhao.min", "Zhao Min", "general_manager", "Company"),
    DemoUser("sun.hao", "Sun Hao", "sales_director", "Sales", manager="zhao.min"),
    DemoUser("chen.jie", "Chen Jie", "sales_manager", "Sales", "Sales East", "sun.hao"),
    DemoUser("li.wei", "Li Wei", "sales_rep", "Sales", "Sales East", "chen.jie"),
    DemoUser("zhang.yu", "Zhang Yu", "sales_rep", "Sales", "Sales East", "chen.jie"),
    DemoUser("zhou.qiang", "Zhou Qiang", "sales_manager", "Sales", "Sales West", "sun.hao"),
    DemoUser("wang.fang", "Wang Fang", "sales_rep", "Sales", "Sales West", "zhou.qiang"),
    DemoUser("liu.yang", "Liu Yang", "finance", "Finance", manager="zhao.min"),
    DemoUser("he.jing", "He Jing", "customer_service", "Customer Service", manager="zhao.min"),
    DemoUser("xu.na", "Xu Na", "marketing", "Marketing", manager="zhao.min"),
    DemoUser("gao.shan", "Gao Shan", "auditor", "Company"),
    DemoUser("ma.lin", "Ma Lin", "operator", "Company"),
)
# Who owns which demo customer (CUSTOMERS[i] goes to REPS[i % len(REPS)]).
REPS = ("li.wei", "zhang.yu", "wang.fang")
PARTNER = {"name": "erp", "scopes": ["customers:read"], "rate_limit_per_minute": 600}


def admin_password() -> str:
    return os.environ.get(ADMIN_PASSWORD_ENV) or DEFAULT_ADMIN_PASSWORD


def password_for(login: str) -> str | None:
    """The demo password of a demo login (admin: the bootstrap password); None for others."""
    if login == ADMIN_LOGIN:
        return admin_password()
    return DEMO_PASSWORD if any(u.login == login for u in USERS) else None

# The seller: Lingbo Precision (a fictional maker of precision-moulded and machined components,
# sensors and cable assemblies for medical-device OEMs). Its customers are device makers.


def _days_ago(days: int, hour: int = 10) -> str:
    moment = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (moment - timedelta(days=days)).isoformat().replace("+00:00", "Z")


CUSTOMERS: list[dict[str, Any]] = [
    {
        "customer": {
            "name": "Huaxin Medical Imaging Co., Ltd.",
            "tax_id": "91320594MA1MXK3L24",
            "industry": "medical_devices",
            "region": "East China",
            "origin": "domestic",
            "tags": ["CT", "key-account", "annual-frame-contract"],
        },
        "contacts": [
            {"name": "Zhou Wei", "title": "Procurement Director", "phones": ["+86 512 6688 1201"],
             "email": "zhou.wei@huaxin-imaging.example.cn", "is_key": True},
            {"name": "Lin Xiaoqing", "title": "Supplier Quality Engineer",
             "phones": ["+86 138 1234 5601"], "email": "lin.xq@huaxin-imaging.example.cn",
             "is_key": False},
        ],
        "follow_ups": [
            {"kind": "visit", "days_ago": 21,
             "summary": "Plant visit: audited the cleanroom moulding line for CT gantry cable "
                        "guides; passed with two minor findings.",
             "key_facts": ["ISO 13485 audit passed", "2 minor findings, close by month end",
                           "Forecast 40k cable guides for next year"]},
            {"kind": "call", "days_ago": 6,
             "summary": "Zhou Wei asked for a quote on the new shielded cable assembly "
                        "(drawing HX-CA-2207 rev C).",
             "key_facts": ["Quote due in two weeks", "Target price 10% under current part",
                           "PPAP level 3 required"]},
        ],
    },
    {
        "customer": {
            "name": "Nordic Infusion Systems AB",
            "tax_id": "SE556812345601",
            "industry": "medical_devices",
            "region": "Europe",
            "origin": "foreign",
            "tags": ["infusion", "EU-MDR", "new-product-introduction"],
        },
        "contacts": [
            {"name": "Erik Lindqvist", "title": "Head of Sourcing", "phones": ["+46 8 5550 1234"],
             "email": "erik.lindqvist@nordicinfusion.example.se", "is_key": True},
            {"name": "Anna Berg", "title": "R&D Project Manager", "phones": ["+46 70 555 0199"],
             "email": "anna.berg@nordicinfusion.example.se", "is_key": False},
        ],
        "follow_ups": [
            {"kind": "meeting", "days_ago": 14,
             "summary": "Video meeting on the pump door latch in PEEK: tolerances and "
                        "biocompatibility evidence for their EU MDR file.",
             "key_facts": ["ISO 10993 test reports requested", "Samples: 200 pcs",
                           "SOP start planned for Q3"]},
            {"kind": "email", "days_ago": 3,
             "summary": "Sent first-article inspection report for 200 latch samples.",
             "key_facts": ["All CTQ dimensions within tolerance", "Awaiting their sign-off"]},
        ],
    },
    {
        "customer": {
            "name": "Suzhou Kangtai Surgical Instruments Co., Ltd.",
            "tax_id": "91320505MA27KT8808",
            "industry": "medical_devices",
            "region": "East China",
            "origin": "domestic",
            "tags": ["laparoscopy", "stainless-steel", "price-sensitive"],
        },
        "contacts": [
            {"name": "Wang Jun", "title": "General Manager", "phones": ["+86 512 6270 8800"],
             "email": "wangjun@kangtai-surgical.example.cn", "is_key": True},
        ],
        "follow_ups": [
            {"kind": "wechat", "days_ago": 9,
             "summary": "Wang Jun confirmed the trocar cannula order will move to us if the "
                        "lead time drops to four weeks.",
             "key_facts": ["Lead time must be 4 weeks", "Monthly volume about 8k pcs"]},
        ],
    },
    {
        "customer": {
            "name": "Pacific Diagnostics Inc.",
            "tax_id": "94-3381726",
            "industry": "diagnostics",
            "region": "North America",
            "origin": "foreign",
            "tags": ["IVD", "sensors", "FDA-registered"],
        },
        "contacts": [
            {"name": "Maria Gonzalez", "title": "Senior Buyer", "phones": ["+1 408 555 0142"],
             "email": "m.gonzalez@pacificdx.example.com", "is_key": True},
            {"name": "David Park", "title": "Manufacturing Engineer",
             "phones": ["+1 408 555 0177"], "email": "d.park@pacificdx.example.com",
             "is_key": False},
        ],
        "follow_ups": [
            {"kind": "call", "days_ago": 30,
             "summary": "Quarterly business review: on-time delivery 97%, one late shipment of "
                        "pressure sensors in May.",
             "key_facts": ["OTD 97%", "Wants consignment stock in Fremont",
                           "Renewal of supply agreement due in 5 months"]},
            {"kind": "email", "days_ago": 2,
             "summary": "Maria asked for revised Incoterms (DAP Fremont) on the renewal quote.",
             "key_facts": ["Switch from FCA Shanghai to DAP", "Currency USD"]},
        ],
    },
    {
        "customer": {
            "name": "Chengdu Ruikang Dialysis Equipment Co., Ltd.",
            "tax_id": "91510100MA61RK552U",
            "industry": "medical_devices",
            "region": "Southwest China",
            "origin": "domestic",
            "tags": ["dialysis", "tender-driven"],
        },
        "contacts": [
            {"name": "Liu Fang", "title": "Purchasing Manager", "phones": ["+86 28 8511 3020"],
             "email": "liufang@ruikang-med.example.cn", "is_key": True},
        ],
        "follow_ups": [
            {"kind": "visit", "days_ago": 12,
             "summary": "Met Liu Fang at their Chengdu plant; they are qualifying a second "
                        "source for blood-line connector housings.",
             "key_facts": ["Second-source qualification", "Decision after the provincial "
                           "tender in two months"]},
        ],
    },
]


def _sign_in(http: httpx.Client, login: str, password: str) -> dict[str, str]:
    r = http.post("/api/v1/auth/token", data={"grant_type": "password", "username": login, "password": password})
    if r.status_code != 200:
        raise RuntimeError(f"sign-in as {login} failed ({r.status_code}): {r.text[:300]}")
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _get(http: httpx.Client, path: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = http.get(path, headers=headers, params=params)
    if r.status_code >= 400:
        raise RuntimeError(f"GET {path} -> {r.status_code}: {r.text[:500]}")
    return dict(r.json())


def _send(http: httpx.Client, method: str, path: str, headers: dict[str, str], body: dict[str, Any],
          key: str = "") -> httpx.Response:
    r = http.request(method, path, headers=headers | ({"Idempotency-Key": key} if key else {}), json=body)
    if r.status_code >= 400:
        raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
    return r


def seed(gateway_url: str, *, password: str | None = None, log: Callable[[str], None] = print,
         client: httpx.Client | None = None) -> dict[str, Any]:
    """Creates what is missing of the demo org, users, partner client and customers; returns a
    summary (with the partner's API key when it was made now: it is shown only once)."""
    own = client is None
    http = client or httpx.Client(base_url=gateway_url.rstrip("/"), timeout=30)
    try:
        admin = _sign_in(http, ADMIN_LOGIN, password or admin_password())
        departments = {d["name"]: d for d in _get(http, "/api/v1/departments", admin)["items"]}
        root = next(d for d in departments.values() if not d["parent_id"])
        departments.setdefault("Company", root)
        for name in DEPARTMENTS:
            if name not in departments:
                departments[name] = _send(http, "POST", "/api/v1/departments", admin,
                                          {"name": name, "parent_id": root["id"]}, f"demo-dept-{name}").json()
        users: dict[str, dict[str, Any]] = {}
        cursor = ""
        while True:
            page = _get(http, "/api/v1/users", admin, limit=200, **({"cursor": cursor} if cursor else {}))
            users.update({u["login"]: u for u in page["items"]})
            cursor = page.get("next_cursor") or ""
            if not cursor:
                break
        teams = {t["name"]: t for t in _get(http, "/api/v1/teams", admin)["items"]}
        made = 0

        def create_user(user: DemoUser, team_ids: list[str]) -> None:
            nonlocal made
            if user.login in users:
                return
            body = {"login": user.login, "display_name": user.name, "password": DEMO_PASSWORD,
                    "roles": [user.role], "department_id": departments[user.department]["id"], "team_ids": team_ids,
                    "manager_id": users[user.manager]["id"] if user.manager else "", "locale": "zh-CN"}
            users[user.login] = _send(http, "POST", "/api/v1/users", admin, body, f"demo-user-{user.login}").json()
            made += 1

        # people without a team, managers first (team leads exist before their teams)
        for user in USERS:
            if not user.team or user.login in TEAM_LEADS.values():
                create_user(user, [])
        for name, department in TEAMS.items():
            if name not in teams:
                lead = users[TEAM_LEADS[name]]
                teams[name] = _send(http, "POST", "/api/v1/teams", admin, {
                    "name": name, "department_id": departments[department]["id"], "lead_user_id": lead["id"]},
                    f"demo-team-{name}").json()
        for name, login in TEAM_LEADS.items():
            lead = users[login]
            if teams[name]["id"] not in lead["team_ids"]:
                users[login] = _send(http, "PATCH", f"/api/v1/users/{lead['id']}",
                                     admin | {"If-Match": f'"v{lead["version"]}"'},
                                     {"team_ids": [teams[name]["id"]]}).json()
        for user in USERS:
            create_user(user, [teams[user.team]["id"]] if user.team else [])
        for department, login in DEPARTMENT_HEADS.items():
            if departments[department].get("head_user_id") != users[login]["id"]:
                _send(http, "PATCH", f"/api/v1/departments/{departments[department]['id']}", admin,
                      {"head_user_id": users[login]["id"]})
        log(f"demo org: {made} users created ({len(USERS)} demo users; password {DEMO_PASSWORD!r})")

        summary: dict[str, Any] = {"users_created": made, "api_key": None, "customers": 0}
        clients = _get(http, "/api/v1/partner-clients", admin)["items"]
        if not any(c["name"] == PARTNER["name"] for c in clients):
            partner = _send(http, "POST", "/api/v1/partner-clients", admin, PARTNER, "demo-partner-erp").json()
            key = _send(http, "POST", "/api/v1/api-keys", admin, {"client_id": partner["client_id"], "name": "demo"},
                        "demo-api-key-erp").json()["key"]
            summary |= {"api_key": key, "client_id": partner["client_id"], "client_secret": partner["client_secret"]}
            log(f"partner client erp ({partner['client_id']}, scope customers:read): shown once —\n"
                f"  X-API-Key: {key}\n  client secret: {partner['client_secret']}")

        rep_headers = {login: _sign_in(http, login, DEMO_PASSWORD) for login in REPS}
        if _get(http, "/api/v1/customers", admin, limit=1)["items"]:
            log("demo data: customers exist already, not loading")
            return summary
        for i, entry in enumerate(CUSTOMERS):
            _load_customer(http, i, entry, rep_headers[REPS[i % len(REPS)]])
        summary["customers"] = len(CUSTOMERS)
        log(f"demo data: loaded {len(CUSTOMERS)} customers owned by {', '.join(REPS)}")
        return summary
    finally:
        if own:
            http.close()


def _load_customer(http: httpx.Client, i: int, entry: dict[str, Any], headers: dict[str, str]) -> None:
    created = _send(http, "POST", "/api/v1/customers", headers, entry["customer"], f"demo-customer-{i}")
    customer_id = created.json()["id"]
    for j, contact in enumerate(entry["contacts"]):
        _send(http, "POST", f"/api/v1/customers/{customer_id}/contacts", headers, contact, f"demo-contact-{i}-{j}")
    for j, follow_up in enumerate(entry["follow_ups"]):
        body = {k: v for k, v in follow_up.items() if k != "days_ago"}
        body["occurred_at"] = _days_ago(follow_up["days_ago"])
        _send(http, "POST", f"/api/v1/customers/{customer_id}/follow-ups", headers, body, f"demo-follow-up-{i}-{j}")


def load(gateway_url: str, token: str, *, log: Callable[[str], None] = print,
         client: httpx.Client | None = None) -> int:
    """Posts the demo customers as the holder of `token` (a suite without identity); returns
    how many it made. Does nothing (returns 0) when the API already holds any customer.
    """
    own = client is None
    http = client or httpx.Client(base_url=gateway_url.rstrip("/"), timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
    try:
        existing = http.get("/api/v1/customers", params={"limit": 1})
        existing.raise_for_status()
        if existing.json().get("items"):
            log("demo data: customers exist already, not loading")
            return 0
        for i, entry in enumerate(CUSTOMERS):
            created = _post(http, "/api/v1/customers", entry["customer"], f"demo-customer-{i}")
            customer_id = created["id"]
            for j, contact in enumerate(entry["contacts"]):
                _post(http, f"/api/v1/customers/{customer_id}/contacts", contact,
                      f"demo-contact-{i}-{j}")
            for j, follow_up in enumerate(entry["follow_ups"]):
                body = {k: v for k, v in follow_up.items() if k != "days_ago"}
                body["occurred_at"] = _days_ago(follow_up["days_ago"])
                _post(http, f"/api/v1/customers/{customer_id}/follow-ups", body,
                      f"demo-follow-up-{i}-{j}")
        log(f"demo data: loaded {len(CUSTOMERS)} customers with contacts and follow-ups")
        return len(CUSTOMERS)
    finally:
        if own:
            http.close()


def _post(http: httpx.Client, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    response = http.post(path, json=body, headers={"Idempotency-Key": key})
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else {}
