"""One source for each limit (issue 12): what gateway/openapi.json advertises for customers,
contacts and follow-ups is what the customers service accepts."""

from __future__ import annotations

import json
from pathlib import Path

from crm_customers.domain import model
from crmkit import limits

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.json"
# schema -> property -> (maxLength or maxItems, maxLength of each item) as the service enforces them.
SERVICE_LIMITS: dict[str, dict[str, tuple[int, int | None]]] = {
    "CustomerCreate": {"name": (model.MAX_NAME, None), "region": (limits.CUSTOMER_REGION, None),
                       "tags": (model.MAX_TAGS, model.MAX_TAG), "addresses": (model.MAX_ADDRESSES, None)},
    "Address": {"line": (limits.ADDRESS_LINE, None), "city": (limits.ADDRESS_CITY, None),
                "province": (limits.ADDRESS_PROVINCE, None), "postal_code": (limits.ADDRESS_POSTAL_CODE, None)},
    "ContactFields": {"name": (limits.CONTACT_NAME, None), "title": (limits.CONTACT_TITLE, None),
                      "phones": (limits.CONTACT_PHONES, limits.CONTACT_PHONE), "email": (limits.CONTACT_EMAIL, None),
                      "wechat": (limits.CONTACT_WECHAT, None)},
    "FollowUpCreate": {"summary": (limits.FOLLOW_UP_SUMMARY, None), "content": (limits.FOLLOW_UP_CONTENT, None),
                       "key_facts": (model.MAX_KEY_FACTS, limits.FOLLOW_UP_KEY_FACT)},
}
SERVICE_LIMITS["CustomerPatch"] = SERVICE_LIMITS["CustomerCreate"]
SERVICE_LIMITS["ContactPatch"] = SERVICE_LIMITS["ContactFields"]
# Limits the service enforces by format instead of by length (a tax ID's checksum, a country code,
# ids it looks up): the gateway's bound is only a size guard.
FORMAT_CHECKED = {"tax_id", "industry", "owner_id", "team_id", "country", "contact_id"}


def _advertised(prop: dict) -> tuple[int | None, int | None]:
    """(maxLength or maxItems, items' maxLength) of a property, through `anyOf: [.., null]`."""
    for variant in prop.get("anyOf", [prop]):
        if "maxLength" in variant:
            return variant["maxLength"], None
        if "maxItems" in variant:
            return variant["maxItems"], variant.get("items", {}).get("maxLength")
    return None, None


def test_every_customer_limit_the_openapi_advertises_is_the_service_limit():
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    compared = 0
    for schema, expected in SERVICE_LIMITS.items():
        for name, prop in schemas[schema]["properties"].items():
            advertised = _advertised(prop)
            if name in FORMAT_CHECKED or advertised == (None, None):
                continue
            assert name in expected, f"{schema}.{name} advertises {advertised} but no service limit is known"
            assert advertised == expected[name], f"{schema}.{name}: OpenAPI {advertised}, service {expected[name]}"
            compared += 1
    assert compared >= 20
