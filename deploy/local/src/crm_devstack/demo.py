"""Demo data for `make dev`: customers of a maker of components for medical devices.

Everything goes through the gateway's public REST API, as a client would. Loading is skipped
when any customer already exists, so restarting the suite does not duplicate anything; each POST
carries a stable Idempotency-Key so that a load interrupted half-way can simply run again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

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
            "industry": "Medical imaging equipment",
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
            "industry": "Infusion pumps",
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
            "industry": "Minimally invasive surgical instruments",
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
            "industry": "In-vitro diagnostics analysers",
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
            "industry": "Dialysis equipment",
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


def load(gateway_url: str, token: str, *, log: Callable[[str], None] = print,
         client: httpx.Client | None = None) -> int:
    """Posts the demo customers with their contacts and follow-ups; returns how many it made.

    Does nothing (returns 0) when the API already holds any customer.
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
