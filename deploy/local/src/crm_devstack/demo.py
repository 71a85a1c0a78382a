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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

ADMIN_LOGIN = "admin"
# The launcher starts identity with this bootstrap password unless the environment sets another.
ADMIN_PASSWORD_ENV = "CRM_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD"  # noqa: S105 - a variable name
DEFAULT_ADMIN_PASSWORD = "crm-dev-bootstrap-2026"  # noqa: S105 - a development default, documented
# Every demo user's password (identity wants 10+ characters that do not contain the login).
DEMO_PASSWORD = "Lingbo-demo-2026"  # noqa: S105 - demo users, listed in README.md
# The SAP simulator's user, as suite.toml configures the sap service (README.md prints it too).
SAP_SIMULATOR_AUTH = ("CRM_INTEGRATION", "simulator-dev-2026")


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
# R-LEAD-02: marketing's leads reach a rep without a hand step. Lower priority is tried first;
# the last rule takes any region.
LEAD_RULES: tuple[dict[str, Any], ...] = (
    {"name": "Demo: East China leads to Sales East", "priority": 500, "team": "Sales East",
     "regions": ["East China", "Shanghai", "Jiangsu", "Zhejiang"], "reps": ("li.wei", "zhang.yu")},
    {"name": "Demo: every other lead to Sales West", "priority": 1000, "team": "Sales West",
     "regions": [], "reps": ("wang.fang",)},
)


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
    r = http.get(path, headers=headers, params=params or None)  # an empty dict would drop the path's own query
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

        _seed_lead_rules(http, admin, users, teams, log)
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


def _seed_lead_rules(http: httpx.Client, admin: dict[str, str], users: dict[str, dict[str, Any]],
                     teams: dict[str, dict[str, Any]], log: Callable[[str], None]) -> None:
    existing = {r["name"] for r in _get(http, "/api/v1/lead-assignment-rules", admin)["items"]}
    for rule in LEAD_RULES:
        if rule["name"] in existing:
            continue
        _send(http, "POST", "/api/v1/lead-assignment-rules", admin, {
            "name": rule["name"], "priority": rule["priority"], "regions": rule["regions"],
            "user_ids": [users[login]["id"] for login in rule["reps"]], "team_id": teams[rule["team"]]["id"]},
            f"demo-lead-rule-{rule['priority']}")
        log(f"lead assignment rule: {rule['name']}")


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


# -- demo deals: every stage of lead to cash, on the demo customers ------------------------------
# The lead-converted customer marks the deals as made: `seed_deals` creates nothing when it exists.
MARKER_CUSTOMER = {"name": "Ningbo Heartline Monitoring Co., Ltd.", "tax_id": "91330201MA2HL7Q35G"}
# marketing's leads; the seeded rules give them to reps by region
DEMO_LEADS: tuple[dict[str, Any], ...] = (
    {"name": "Ma Jun", "company": "Hangzhou Clearview Endoscopy Co., Ltd.", "region": "Zhejiang",
     "phone": "13857100231", "source": "trade_show", "campaign": "CMEF 2026", "channel": "offline"},
    {"name": "Kenji Sato", "company": "Osaka Respira Devices K.K.", "region": "Japan",
     "email": "k.sato@respira.example.jp", "source": "website", "campaign": "sensors-landing", "channel": "online"},
)
# (customer index in CUSTOMERS, name, amount in CNY, stage name or "lost:<reason>"); the customer's owner makes it
OPEN_DEALS: tuple[tuple[int, str, str, str], ...] = (
    (4, "Blood-line connector housings, second source", "320000", "Qualification"),
    (1, "Sensor housing for the next pump generation", "260000", "Needs analysis"),
    (0, "Shielded cable assembly HX-CA-2207", "880000", "Proposal"),
    (3, "Pressure sensor supply agreement, renewal", "1450000", "Negotiation"),
    (4, "Dialyser end caps, 2026 provincial tender", "150000", "lost:price"),
)
# (customer index, product, specification, quantity, unit price): quotes the customers accept
WON_DEALS: dict[str, tuple[int, str, str, str, str]] = {
    "in approval": (1, "Pump door latch, PEEK", "natural PEEK, EU MDR file", "12000", "16.80"),
    "drafted": (2, "Trocar cannula 5 mm", "316L, laser-marked", "96000", "3.20"),
}
SIGNED_DEAL = ("Shielded ECG lead-wire assembly", "5-lead, IEC 60601-2-25", "20000", "18.50")


def seed_deals(gateway_url: str, sap_simulator_url: str, *, log: Callable[[str], None] = print,
               client: httpx.Client | None = None, timeout: float = 45.0) -> dict[str, Any]:
    """A few deals at every stage, made once through the REST API as the demo users would (after
    `seed`): leads, open opportunities in several stages and a lost one, an accepted quote whose
    contract is drafted, a contract in approval, and a contract signed from a converted lead with an
    order, SAP's confirmation, delivery and invoice, and a deposit instalment already past due; the
    contract ends within 90 days (a renewal). Returns what it made (empty when the marker customer
    exists already). Asynchronous steps are polled up to `timeout` seconds each. The marker is made
    early (the lead's conversion): a run that failed after it is not resumed (`make reset`)."""
    own = client is None
    http = client or httpx.Client(base_url=gateway_url.rstrip("/"), timeout=30)
    try:
        admin = _sign_in(http, ADMIN_LOGIN, admin_password())
        if _customer_named(http, admin, MARKER_CUSTOMER["name"]):
            log(f"demo deals: exist already ({MARKER_CUSTOMER['name']}), not seeding")
            return {}
        found = [_customer_named(http, admin, entry["customer"]["name"]) for entry in CUSTOMERS]
        customers = [c for c in found if c is not None]
        if len(customers) != len(CUSTOMERS):
            log("demo deals: the demo customers are missing, not seeding")
            return {}
        return _DealSeeder(http, sap_simulator_url, log, timeout).run(customers)
    finally:
        if own:
            http.close()


def _customer_named(http: httpx.Client, headers: dict[str, str], name: str) -> dict[str, Any] | None:
    return next((c for c in _get(http, "/api/v1/customers", headers, name=name)["items"] if c["name"] == name), None)


class _DealSeeder:
    """One run of `seed_deals`: each demo user signs in once and acts on their own records."""

    def __init__(self, http: httpx.Client, sap_simulator_url: str, log: Callable[[str], None],
                 timeout: float) -> None:
        self.http, self.sap_url, self.log, self.timeout = http, sap_simulator_url, log, timeout
        self.today = datetime.now(UTC).date()
        self.people: dict[str, dict[str, str]] = {}
        self.logins: dict[str, str] = {}  # user id -> login

    def person(self, login: str) -> dict[str, str]:
        if login not in self.people:
            password = password_for(login)
            if password is None:
                raise RuntimeError(f"{login} is not a demo user: cannot act as them")
            self.people[login] = _sign_in(self.http, login, password)
            self.logins[_get(self.http, "/api/v1/me", self.people[login])["subject"]] = login
        return self.people[login]

    def login_of(self, user_id: str, asking: dict[str, str]) -> str:
        return self.logins.get(user_id) or str(_get(self.http, f"/api/v1/users/{user_id}", asking)["login"])

    def act(self, path: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> httpx.Response:
        """An action (POST); with no body when it needs none."""
        r = self.http.post(path, headers=headers, **({"json": body} if body is not None else {}))
        if r.status_code >= 400:
            raise RuntimeError(f"POST {path} -> {r.status_code}: {r.text[:500]}")
        return r

    def until(self, check: Callable[[], Any], what: str) -> Any:
        """Polls `check` until it answers something other than None, up to the timeout."""
        deadline = time.monotonic() + self.timeout
        while (answer := check()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo deals: {what} did not happen within {self.timeout:.0f} s")
            time.sleep(0.1)  # between polls
        return answer

    def run(self, customers: list[dict[str, Any]]) -> dict[str, Any]:
        """The ids made: leads, opportunities, contracts by stage, and the marker customer's order
        and invoice."""
        for login in ("xu.na", *REPS, "liu.yang"):
            self.person(login)
        made: dict[str, Any] = {"leads": self.leads(), "contracts": {}}
        signed = self.signed_deal()
        made["customer"], made["opportunities"] = signed["customer_id"], [signed["opportunity_id"]]
        made["contracts"]["signed"] = signed["contract_id"]
        made["order"], made["invoice"] = signed["order_id"], signed["invoice_id"]
        made["opportunities"] += [self.open_deal(customers[i], *deal) for i, *deal in OPEN_DEALS]
        for stage, (i, *line) in WON_DEALS.items():
            opportunity_id, contract_id = self.won_deal(customers[i], stage, *line)
            made["opportunities"].append(opportunity_id)
            made["contracts"][stage] = contract_id
        return made

    def leads(self) -> list[str]:
        marketing, ids = self.people["xu.na"], []
        for i, body in enumerate(DEMO_LEADS):
            lead = _send(self.http, "POST", "/api/v1/leads", marketing, body, f"demo-deal-lead-{i}").json()
            owner = self.login_of(lead["owner_id"], marketing)
            if i:  # the second one is being worked on
                lead = self.act(f"/api/v1/leads/{lead['id']}/status", self.people[owner], {"status": "working"}).json()
            ids.append(lead["id"])
            self.log(f"demo lead: {body['company']} ({body['region']}) → {owner}, {lead['status']}")
        return ids

    def quote_accepted(self, rep: dict[str, str], opportunity_id: str, product: str, specification: str,
                       quantity: str, unit_price: str) -> dict[str, Any]:
        """A quote sent and accepted: the opportunity is won; returns the contract drafted from it."""
        quote = _send(self.http, "POST", "/api/v1/quotes", rep, {
            "opportunity_id": opportunity_id, "valid_until": (self.today + timedelta(days=30)).isoformat(),
            "lines": [{"product": product, "specification": specification, "quantity": quantity,
                       "unit_price": unit_price, "tax_rate_percent": "13"}]},
            f"demo-deal-quote-{opportunity_id}").json()
        self.act(f"/api/v1/quotes/{quote['id']}/send", rep)
        contracts_of_quote = self.act(f"/api/v1/quotes/{quote['id']}/accept", rep).json()["links"]["contract"]

        def drafted() -> dict[str, Any] | None:
            items = _get(self.http, contracts_of_quote, rep)["items"]
            return items[0] if items else None

        return dict(self.until(drafted, f"the contract drafted from the accepted quote for {product}"))

    def plan(self, rep: dict[str, str], contract: dict[str, Any], start: date, end: date,
             deposit_due: date, rest_due: date) -> None:
        """The term, and a 30 % deposit plus the rest as the receivable plan."""
        url = f"/api/v1/contracts/{contract['id']}"
        _send(self.http, "PATCH", url, rep, {"start_date": start.isoformat(), "end_date": end.isoformat()})
        total = Decimal(contract["amount"]["amount"])
        deposit = (total * Decimal("0.3")).quantize(Decimal("0.01"))
        _send(self.http, "PUT", f"{url}/receivable-plan", rep, {"instalments": [
            {"due_date": deposit_due.isoformat(), "amount": str(deposit), "label": "deposit 30 %"},
            {"due_date": rest_due.isoformat(), "amount": str(total - deposit), "label": "on delivery"}]})

    def open_deal(self, customer: dict[str, Any], name: str, amount: str, stage: str) -> str:
        rep = self.person(self.login_of(customer["owner_id"], self.people["xu.na"]))
        opportunity = _send(self.http, "POST", "/api/v1/opportunities", rep, {
            "customer_id": customer["id"], "name": name, "amount": {"amount": amount, "currency": "CNY"},
            "expected_close_date": (self.today + timedelta(days=75)).isoformat()},
            f"demo-deal-opportunity-{customer['id']}-{name}").json()
        url = f"/api/v1/opportunities/{opportunity['id']}"
        if stage.startswith("lost:"):
            self.act(f"{url}/lost", rep, {"reason": stage.removeprefix("lost:"), "note": "undercut by 12 %"})
        elif opportunity["stage_id"] != (stage_id := self.stage_id(rep, opportunity["pipeline_id"], stage)):
            self.act(f"{url}/stage", rep, {"stage_id": stage_id})
        outcome = f"lost ({stage.removeprefix('lost:')})" if stage.startswith("lost:") else stage
        self.log(f"demo opportunity: {name} ({customer['name']}, CNY {amount}) — {outcome}")
        return str(opportunity["id"])

    def stage_id(self, headers: dict[str, str], pipeline_id: str, name: str) -> str:
        pipelines = _get(self.http, "/api/v1/pipelines", headers)["items"]
        stages = next(p["stages"] for p in pipelines if p["id"] == pipeline_id)
        return str(next(s["id"] for s in stages if s["name"] == name))

    def won_deal(self, customer: dict[str, Any], stage: str, product: str, specification: str, quantity: str,
                 unit_price: str) -> tuple[str, str]:
        rep = self.person(self.login_of(customer["owner_id"], self.people["xu.na"]))
        opportunity = _send(self.http, "POST", "/api/v1/opportunities", rep, {
            "customer_id": customer["id"], "name": product,
            "amount": {"amount": str(Decimal(quantity) * Decimal(unit_price)), "currency": "CNY"}},
            f"demo-deal-opportunity-{customer['id']}-{product}").json()
        contract = self.quote_accepted(rep, opportunity["id"], product, specification, quantity, unit_price)
        if stage == "in approval":
            self.plan(rep, contract, self.today + timedelta(days=7), self.today + timedelta(days=371),
                      self.today + timedelta(days=14), self.today + timedelta(days=90))
            steps = self.act(f"/api/v1/contracts/{contract['id']}/submit", rep).json()["items"]
            waiting = self.login_of(steps[0]["approver_ids"][0], rep)
            self.log(f"demo contract {contract['contract_number']}: {product} ({customer['name']}), "
                     f"in approval, waiting for {waiting}")
        else:
            self.log(f"demo contract {contract['contract_number']}: {product} ({customer['name']}), "
                     "drafted from the accepted quote")
        return str(opportunity["id"]), str(contract["id"])

    def signed_deal(self) -> dict[str, str]:
        """Marketing's lead, converted by its rep into the marker customer, quoted, accepted, approved,
        signed (a frame contract ending in 60 days, its deposit 40 days late), ordered, confirmed,
        delivered and billed by SAP."""
        marketing, finance = self.people["xu.na"], self.people["liu.yang"]
        lead = _send(self.http, "POST", "/api/v1/leads", marketing, {
            "name": "Xu Hong", "company": MARKER_CUSTOMER["name"], "region": "Zhejiang", "phone": "057487651200",
            "source": "referral", "campaign": "key-account referrals", "channel": "offline"},
            "demo-deal-lead-marker").json()
        owner = self.login_of(lead["owner_id"], marketing)
        rep = self.people[owner]
        product, specification, quantity, unit_price = SIGNED_DEAL
        converted = self.act(f"/api/v1/leads/{lead['id']}/convert", rep, {
            "customer_name": MARKER_CUSTOMER["name"], "tax_id": MARKER_CUSTOMER["tax_id"],
            "opportunity": {"name": product, "amount": {
                "amount": str(Decimal(quantity) * Decimal(unit_price)), "currency": "CNY"}}}).json()
        customer_id, opportunity_id = converted["customer"]["id"], converted["opportunity"]["id"]
        self.log(f"demo lead: {MARKER_CUSTOMER['name']} → {owner}, converted into a customer and an opportunity")
        contract = self.quote_accepted(rep, opportunity_id, product, specification, quantity, unit_price)
        url = f"/api/v1/contracts/{contract['id']}"
        self.plan(rep, contract, self.today - timedelta(days=305), self.today + timedelta(days=60),
                  self.today - timedelta(days=40), self.today + timedelta(days=30))
        for step in self.act(f"{url}/submit", rep).json()["items"]:
            approver = self.person(self.login_of(step["approver_ids"][0], rep))
            [mine] = [s for s in _get(self.http, "/api/v1/approvals", approver)["items"]
                      if s["contract_id"] == contract["id"]]
            self.act(f"/api/v1/approvals/{mine['id']}/approve", approver)
        signed = self.act(f"{url}/sign", rep)
        self.log(f"demo contract {contract['contract_number']}: {product} ({MARKER_CUSTOMER['name']}), "
                 f"signed, ends {(self.today + timedelta(days=60)).isoformat()}, deposit due 40 days ago")
        order = self.order(rep, contract["id"], signed.json()["lines"][0]["line_id"], quantity)
        invoice = self.billed_by_sap(rep, finance, order)
        self.log(f"demo invoice {invoice['invoice_number']}: CNY {invoice['total']['amount']}, "
                 f"due {invoice['due_on']}, open")
        return {"customer_id": customer_id, "opportunity_id": opportunity_id, "contract_id": contract["id"],
                "order_id": order.json()["id"], "invoice_id": invoice["id"]}

    def order(self, rep: dict[str, str], contract_id: str, line_id: str, quantity: str) -> httpx.Response:
        body = {"contract_id": contract_id, "customer_reference": "NBHL-PO-2026-031",
                "requested_delivery_date": (self.today + timedelta(days=14)).isoformat(),
                "lines": [{"contract_line_id": line_id, "quantity": quantity}]}

        def placed() -> httpx.Response | None:  # 404 until orders has heard of the signed contract
            r = self.http.post("/api/v1/orders", json=body,
                               headers=rep | {"Idempotency-Key": f"demo-deal-order-{contract_id}"})
            return None if r.status_code == 404 else r

        reply: httpx.Response = self.until(placed, "the signed contract reaching orders")
        if reply.status_code != 201:
            raise RuntimeError(f"POST /api/v1/orders -> {reply.status_code}: {reply.text[:500]}")
        return reply

    def billed_by_sap(self, rep: dict[str, str], finance: dict[str, str],
                      order_reply: httpx.Response) -> dict[str, Any]:
        """SAP confirms the order; the simulator delivers and bills it; the invoice reaches billing."""
        order_url = order_reply.headers["Location"]

        def order_in(status: str) -> dict[str, Any] | None:
            order = _get(self.http, order_url, rep)
            return order if order["status"] == status else None

        order = self.until(lambda: order_in("confirmed"), "SAP's confirmation of the order")
        self.log(f"demo order {order['order_number']}: confirmed as SAP sales order {order['sap_sales_order']}")
        with httpx.Client(base_url=self.sap_url, auth=SAP_SIMULATOR_AUTH, timeout=10) as sap:
            for command in ("deliver", "bill"):
                r = sap.post(f"/_sim/sales-orders/{order['sap_sales_order']}/{command}")
                if r.status_code != 200:
                    raise RuntimeError(f"SAP simulator {command} -> {r.status_code}: {r.text[:300]}")
                if command == "deliver":
                    self.until(lambda: order_in("delivered"), "the SAP delivery on the order")
        invoices_of_order = _link(order_reply, "invoices")

        def invoiced() -> dict[str, Any] | None:
            items = _get(self.http, invoices_of_order, finance)["items"]
            return items[0] if items else None

        return dict(self.until(invoiced, "the invoice from SAP's billing document"))


def _link(response: httpx.Response, rel: str) -> str:
    """The URL of one relation in an RFC 8288 Link header."""
    for part in response.headers["Link"].split(","):
        url, _, params = part.strip().partition(";")
        if params.strip() == f'rel="{rel}"':
            return url.strip().strip("<>")
    raise RuntimeError(f"no rel={rel} in {response.headers['Link']}")
