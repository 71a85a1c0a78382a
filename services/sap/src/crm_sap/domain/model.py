"""The rules of the SAP integration, without I/O: what a CRM record becomes in SAP, how a
failed attempt is retried, and what counts as drift."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    BUSINESS_PARTNER = "business_partner"
    SALES_ORDER = "sales_order"


class Operation(StrEnum):
    UPSERT = "upsert"  # create when SAP has no record yet, else update
    CANCEL = "cancel"  # sales orders: reject the items in SAP


class ChangeState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    PARKED = "parked"  # a permanent error: waits for an operator (retry / replay)
    SUPERSEDED = "superseded"  # an operator replayed the record from its latest state


class SyncState(StrEnum):
    PENDING = "pending"  # changes queued, not yet in SAP
    SYNCED = "synced"
    RETRYING = "retrying"  # SAP unavailable or transient error; backing off
    PARKED = "parked"


@dataclass(frozen=True)
class SapDefaults:
    """The SAP organisational data the CRM does not know (customising of the target system)."""

    bp_grouping: str = "BP02"
    language: str = "ZH"
    sales_organization: str = "1010"
    distribution_channel: str = "10"
    division: str = "00"
    sales_order_type: str = "OR"
    payment_terms: str = "0001"
    price_condition: str = "PPR0"
    rejection_reason: str = "02"
    delivery_block: str = "01"


# references: how SAP remembers which CRM record a document came from --------------------------------
def business_partner_reference(customer_id: str) -> str:
    """BusinessPartnerIDByExtSystem (String 20): the CRM customer id does not fit (36 chars), so a
    stable 100-bit digest of it, base32, upper case (the field's display format)."""
    digest = hashlib.sha256(customer_id.encode()).digest()
    return base64.b32encode(digest).decode()[:20]


def sales_order_reference(order_id: str) -> str:
    """PurchaseOrderByCustomer (String 35): the CRM order id as 32 hex digits, upper case."""
    return order_id.replace("-", "").upper()


# payloads -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomerCopy:
    """What the integration keeps of a CRM customer: the fields that go to SAP."""

    customer_id: str
    name: str
    country: str = ""
    region: str = ""
    city: str = ""
    postal_code: str = ""
    street: str = ""
    currency: str = "CNY"

    def sap_fields(self) -> dict[str, str]:
        name1, name2 = split_name(self.name)
        return {"OrganizationBPName1": name1, "OrganizationBPName2": name2, "Country": self.country.upper(),
                "CityName": self.city[:40], "PostalCode": self.postal_code[:10], "StreetName": self.street[:60]}


def split_name(name: str) -> tuple[str, str]:
    """OrganizationBPName1/2 hold 40 characters each; the rest of a longer name is cut."""
    name = " ".join(name.split())
    return name[:40], name[40:80]


def search_term(name: str) -> str:
    return " ".join(name.split())[:20].upper()


def business_partner_create(c: CustomerCopy, d: SapDefaults) -> dict[str, Any]:
    f = c.sap_fields()
    address = {k: f[k] for k in ("Country", "CityName", "PostalCode", "StreetName")} | {"Language": d.language}
    return {
        "BusinessPartnerCategory": "2",  # organisation
        "BusinessPartnerGrouping": d.bp_grouping,
        "OrganizationBPName1": f["OrganizationBPName1"],
        "OrganizationBPName2": f["OrganizationBPName2"],
        "SearchTerm1": search_term(c.name),
        "BusinessPartnerIDByExtSystem": business_partner_reference(c.customer_id),
        "Language": d.language,
        "CorrespondenceLanguage": d.language,
        "to_BusinessPartnerRole": {"results": [{"BusinessPartnerRole": "FLCU00"}, {"BusinessPartnerRole": "FLCU01"}]},
        "to_BusinessPartnerAddress": {"results": [address]},
        "to_Customer": {"to_CustomerSalesArea": {"results": [{
            "SalesOrganization": d.sales_organization, "DistributionChannel": d.distribution_channel,
            "Division": d.division, "Currency": c.currency, "CustomerPaymentTerms": d.payment_terms}]}},
    }


def business_partner_update(c: CustomerCopy) -> tuple[dict[str, Any], dict[str, Any]]:
    """(A_BusinessPartner changes, A_BusinessPartnerAddress changes)."""
    f = c.sap_fields()
    header = {"OrganizationBPName1": f["OrganizationBPName1"], "OrganizationBPName2": f["OrganizationBPName2"],
              "SearchTerm1": search_term(c.name)}
    address = {k: f[k] for k in ("Country", "CityName", "PostalCode", "StreetName")}
    return header, address


@dataclass(frozen=True)
class OrderLineCopy:
    line_id: str
    line_number: int
    product: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal


@dataclass(frozen=True)
class OrderCopy:
    order_id: str
    order_number: str
    customer_id: str
    currency: str
    requested_delivery_date: dt.date | None
    lines: tuple[OrderLineCopy, ...] = field(default_factory=tuple)

    def item_numbers(self) -> dict[str, str]:
        """CRM line id -> SAP item number: line 1 is item 10, line 2 item 20, ..."""
        return {li.line_id: item_number(li.line_number) for li in self.lines}


def item_number(line_number: int) -> str:
    return str(line_number * 10)


def sales_order_create(o: OrderCopy, sold_to: str, d: SapDefaults, *, format_date: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "SalesOrderType": d.sales_order_type, "SalesOrganization": d.sales_organization,
        "DistributionChannel": d.distribution_channel, "OrganizationDivision": d.division,
        "SoldToParty": sold_to, "PurchaseOrderByCustomer": sales_order_reference(o.order_id),
        "TransactionCurrency": o.currency,
    }
    if o.requested_delivery_date:
        header["RequestedDeliveryDate"] = format_date(o.requested_delivery_date)
    header["to_Partner"] = {"results": [{"PartnerFunction": "SH", "Customer": sold_to}]}
    header["to_Item"] = {"results": [{
        "SalesOrderItem": item_number(li.line_number),
        "Material": li.product[:40],
        "SalesOrderItemText": li.description[:40],
        "RequestedQuantity": str(li.quantity),
        "RequestedQuantityUnit": li.unit[:3],
        "to_PricingElement": {"results": [{"ConditionType": d.price_condition,
                                           "ConditionRateValue": str(li.unit_price),
                                           "ConditionCurrency": o.currency}]},
    } for li in sorted(o.lines, key=lambda li: li.line_number)]}
    return header


# retries --------------------------------------------------------------------------------------------
def backoff(attempts: int, *, base: float = 5.0, cap: float = 900.0, rand: random.Random | None = None) -> float:
    """Seconds until the next attempt after `attempts` failures: exponential, capped, with full
    jitter on the upper half so a crowd of records does not come back in step."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    r = (rand or random).random()
    return ceiling / 2 + r * ceiling / 2


# drift ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    field: str
    crm: str
    sap: str


def drift(crm: dict[str, str], sap: dict[str, str]) -> list[Difference]:
    """Fields whose values differ between the CRM's copy and SAP (SAP upper-cases some; compared
    case-insensitively and whitespace-normalised)."""
    out = []
    for name, value in crm.items():
        theirs = sap.get(name, "")
        if " ".join(value.split()).casefold() != " ".join((theirs or "").split()).casefold():
            out.append(Difference(name, value, theirs or ""))
    return out
