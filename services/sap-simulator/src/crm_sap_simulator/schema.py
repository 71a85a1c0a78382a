"""The part of the four S/4HANA OData V2 services the simulator serves, described once.

Names, types, lengths, keys and concurrency tokens follow SAP's published API specifications
(the conformance test in services/sap holds them against the real EDMX); the selection of
properties is ours: what the CRM integration reads and writes, plus the status and reference
fields that make the document chain order -> delivery -> billing document observable. The EDMX
served at `$metadata` is generated from this description, not copied from SAP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr


@dataclass(frozen=True)
class Prop:
    name: str
    type: str = "Edm.String"
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True
    creatable: bool = True
    updatable: bool = True
    concurrency: bool = False


def S(name: str, length: int, **kw: object) -> Prop:
    return Prop(name, "Edm.String", max_length=length, **kw)  # type: ignore[arg-type]


def D(name: str, precision: int, scale: int, **kw: object) -> Prop:
    return Prop(name, "Edm.Decimal", precision=precision, scale=scale, **kw)  # type: ignore[arg-type]


def DT(name: str, precision: int = 0, **kw: object) -> Prop:
    return Prop(name, "Edm.DateTime", precision=precision, **kw)  # type: ignore[arg-type]


def DTO(name: str, precision: int = 0, **kw: object) -> Prop:
    return Prop(name, "Edm.DateTimeOffset", precision=precision, **kw)  # type: ignore[arg-type]


RO = {"creatable": False, "updatable": False}
NC = {"creatable": False}
KEY = {"nullable": False}


@dataclass(frozen=True)
class Nav:
    name: str
    target: str  # entity set name
    many: bool = True


@dataclass(frozen=True)
class EntitySet:
    name: str
    type_name: str
    keys: tuple[str, ...]
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...] = ()
    creatable: bool = True
    updatable: bool = True
    deletable: bool = False

    def prop(self, name: str) -> Prop:
        for p in self.props:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> set[str]:
        return {p.name for p in self.props}

    @property
    def etag_prop(self) -> Prop | None:
        return next((p for p in self.props if p.concurrency), None)

    def nav(self, name: str) -> Nav:
        for n in self.navs:
            if n.name == name:
                return n
        raise KeyError(name)


@dataclass(frozen=True)
class Service:
    name: str  # API_SALES_ORDER_SRV
    path: str  # the service root under /sap/opu/odata/sap/
    namespace: str
    sets: dict[str, EntitySet] = field(default_factory=dict)


def _service(name: str, path: str, *sets: EntitySet) -> Service:
    return Service(name, path, name, {s.name: s for s in sets})


BUSINESS_PARTNER = _service(
    "API_BUSINESS_PARTNER", "API_BUSINESS_PARTNER",
    EntitySet("A_BusinessPartner", "A_BusinessPartnerType", ("BusinessPartner",), (
        S("BusinessPartner", 10, **KEY), S("Customer", 10, **RO), S("BusinessPartnerCategory", 1),
        S("BusinessPartnerGrouping", 4), S("BusinessPartnerFullName", 81, **RO), S("OrganizationBPName1", 40),
        S("OrganizationBPName2", 40), S("SearchTerm1", 20), S("SearchTerm2", 20),
        S("BusinessPartnerIDByExtSystem", 20), S("Language", 2),
        S("CorrespondenceLanguage", 2), DT("CreationDate", **RO), Prop("CreationTime", "Edm.Time", precision=0, **RO),
        DT("LastChangeDate", **RO), Prop("LastChangeTime", "Edm.Time", precision=0, **RO),
        Prop("BusinessPartnerIsBlocked", "Edm.Boolean"), S("ETag", 26, **RO),
    ), (Nav("to_BusinessPartnerAddress", "A_BusinessPartnerAddress"),
        Nav("to_BusinessPartnerRole", "A_BusinessPartnerRole"),
        Nav("to_Customer", "A_Customer", many=False))),
    EntitySet("A_BusinessPartnerAddress", "A_BusinessPartnerAddressType", ("BusinessPartner", "AddressID"), (
        S("BusinessPartner", 10, **KEY), S("AddressID", 10, **KEY), S("Country", 3), S("Region", 3),
        S("CityName", 40), S("PostalCode", 10), S("StreetName", 60), S("HouseNumber", 10), S("Language", 2),
        DTO("ValidityStartDate"), DTO("ValidityEndDate"),
    )),
    EntitySet("A_BusinessPartnerRole", "A_BusinessPartnerRoleType", ("BusinessPartner", "BusinessPartnerRole"), (
        S("BusinessPartner", 10, **KEY), S("BusinessPartnerRole", 6, **KEY), DTO("ValidFrom"), DTO("ValidTo"),
    )),
    EntitySet("A_Customer", "A_CustomerType", ("Customer",), (
        S("Customer", 10, **KEY), S("CustomerName", 80, **RO), S("CustomerFullName", 220, **RO),
        S("CustomerAccountGroup", 4), S("OrderIsBlockedForCustomer", 2), Prop("DeletionIndicator", "Edm.Boolean"),
    ), (Nav("to_CustomerSalesArea", "A_CustomerSalesArea"),), creatable=False),
    EntitySet("A_CustomerSalesArea", "A_CustomerSalesAreaType",
              ("Customer", "SalesOrganization", "DistributionChannel", "Division"), (
        S("Customer", 10, **KEY), S("SalesOrganization", 4, **KEY), S("DistributionChannel", 2, **KEY),
        S("Division", 2, **KEY), S("Currency", 5), S("CustomerPaymentTerms", 4),
    )),
)

SALES_ORDER = _service(
    "API_SALES_ORDER_SRV", "API_SALES_ORDER_SRV",
    EntitySet("A_SalesOrder", "A_SalesOrderType", ("SalesOrder",), (
        S("SalesOrder", 10, **KEY), S("SalesOrderType", 4), S("SalesOrganization", 4), S("DistributionChannel", 2),
        S("OrganizationDivision", 2), S("SoldToParty", 10), S("PurchaseOrderByCustomer", 35),
        DT("SalesOrderDate"), DT("RequestedDeliveryDate"), DT("CreationDate", **RO),
        DTO("LastChangeDateTime", 7, concurrency=True, **RO),
        D("TotalNetAmount", 16, 3, **RO), S("TransactionCurrency", 5),
        S("OverallSDProcessStatus", 1, **RO), S("OverallTotalDeliveryStatus", 1, **RO),
        S("OverallDeliveryStatus", 1, **RO), S("OverallOrdReltdBillgStatus", 1, **RO),
        S("HeaderBillingBlockReason", 2), S("DeliveryBlockReason", 2),
    ), (Nav("to_Item", "A_SalesOrderItem"), Nav("to_Partner", "A_SalesOrderHeaderPartner"))),
    EntitySet("A_SalesOrderItem", "A_SalesOrderItemType", ("SalesOrder", "SalesOrderItem"), (
        S("SalesOrder", 10, nullable=False, **RO), S("SalesOrderItem", 6, **KEY), S("Material", 40),
        S("SalesOrderItemText", 40), S("PurchaseOrderByCustomer", 35), D("RequestedQuantity", 15, 3),
        S("RequestedQuantityUnit", 3), D("NetAmount", 16, 3, **RO), S("TransactionCurrency", 5, **RO),
        S("SDProcessStatus", 1, **RO), S("DeliveryStatus", 1, **RO), S("OrderRelatedBillingStatus", 1, **RO),
        S("SalesDocumentRjcnReason", 2),
    ), (Nav("to_PricingElement", "A_SalesOrderItemPrElement"),)),
    EntitySet("A_SalesOrderItemPrElement", "A_SalesOrderItemPrElementType",
              ("SalesOrder", "SalesOrderItem", "PricingProcedureStep", "PricingProcedureCounter"), (
        S("SalesOrder", 10, nullable=False, **RO), S("SalesOrderItem", 6, nullable=False, **RO),
        S("PricingProcedureStep", 3, **KEY), S("PricingProcedureCounter", 3, **KEY), S("ConditionType", 4),
        D("ConditionRateValue", 24, 9), S("ConditionCurrency", 5),
    )),
    EntitySet("A_SalesOrderHeaderPartner", "A_SalesOrderHeaderPartnerType", ("SalesOrder", "PartnerFunction"), (
        S("SalesOrder", 10, nullable=False, **RO), S("PartnerFunction", 2, **KEY), S("Customer", 10),
    )),
)

OUTBOUND_DELIVERY = _service(
    "API_OUTBOUND_DELIVERY_SRV", "API_OUTBOUND_DELIVERY_SRV;v=0002",
    EntitySet("A_OutbDeliveryHeader", "A_OutbDeliveryHeaderType", ("DeliveryDocument",), (
        S("DeliveryDocument", 10, nullable=False, **RO), S("DeliveryDocumentType", 4, **RO), S("SoldToParty", 10, **RO),
        S("ShipToParty", 10, **RO), S("ShippingPoint", 4, updatable=False), S("SalesOrganization", 4, **RO),
        DT("DeliveryDate", 7, **NC), DT("PlannedGoodsIssueDate", 7, **NC), DT("ActualGoodsMovementDate", 7, **NC),
        Prop("ActualGoodsMovementTime", "Edm.Time", precision=0, **RO),
        S("OverallGoodsMovementStatus", 1, **RO), S("OverallPickingStatus", 1, **RO),
        S("OverallDelivReltdBillgStatus", 1, **RO), S("OverallSDProcessStatus", 1, **RO),
        D("HeaderGrossWeight", 15, 3, **NC), S("HeaderWeightUnit", 3, **NC), S("BillOfLading", 35, **NC),
        S("MeansOfTransport", 20, **NC), DT("CreationDate", 7, **RO), DT("LastChangeDate", 7, **RO),
        S("DeliveryVersion", 4, concurrency=True, **RO),
    ), (Nav("to_DeliveryDocumentItem", "A_OutbDeliveryItem"),), creatable=False),
    EntitySet("A_OutbDeliveryItem", "A_OutbDeliveryItemType", ("DeliveryDocument", "DeliveryDocumentItem"), (
        S("DeliveryDocument", 10, nullable=False, updatable=False), S("DeliveryDocumentItem", 6, nullable=False, **RO),
        S("Material", 40, **RO), S("DeliveryDocumentItemText", 40, **NC), D("ActualDeliveryQuantity", 13, 3),
        S("DeliveryQuantityUnit", 3, updatable=False), S("Plant", 4, **RO),
        S("ReferenceSDDocument", 10, updatable=False), S("ReferenceSDDocumentItem", 6, updatable=False),
        S("GoodsMovementStatus", 1, **RO), S("PickingStatus", 1, **RO),
        S("DeliveryVersion", 4, concurrency=True, **RO),
    ), creatable=False),
)

BILLING_DOCUMENT = _service(
    "API_BILLING_DOCUMENT_SRV", "API_BILLING_DOCUMENT_SRV",
    EntitySet("A_BillingDocument", "A_BillingDocumentType", ("BillingDocument",), (
        S("BillingDocument", 10, **KEY), S("BillingDocumentType", 4), S("SDDocumentCategory", 4),
        S("BillingDocumentCategory", 1), DT("BillingDocumentDate"), DT("CreationDate"),
        DTO("LastChangeDateTime", 7, concurrency=True), S("SalesOrganization", 4), S("DistributionChannel", 2),
        S("Division", 2), S("SoldToParty", 10), S("PayerParty", 10), D("TotalNetAmount", 16, 3),
        D("TaxAmount", 14, 3), D("TotalGrossAmount", 17, 3), S("TransactionCurrency", 5),
        Prop("BillingDocumentIsCancelled", "Edm.Boolean"), S("CancelledBillingDocument", 10), S("CompanyCode", 4),
        S("FiscalYear", 4), S("AccountingDocument", 10), S("DocumentReferenceID", 16),
        S("OverallBillingStatus", 1), S("AccountingPostingStatus", 1),
    ), (Nav("to_Item", "A_BillingDocumentItem"),), creatable=False, updatable=False),
    EntitySet("A_BillingDocumentItem", "A_BillingDocumentItemType", ("BillingDocument", "BillingDocumentItem"), (
        S("BillingDocument", 10, **KEY), S("BillingDocumentItem", 6, **KEY), S("Material", 40),
        S("BillingDocumentItemText", 40), D("BillingQuantity", 13, 3), S("BillingQuantityUnit", 3),
        D("NetAmount", 16, 3), D("GrossAmount", 16, 3), D("TaxAmount", 14, 3), S("TransactionCurrency", 5),
        S("ReferenceSDDocument", 10), S("ReferenceSDDocumentItem", 6), S("SalesDocument", 10),
        S("SalesDocumentItem", 6),
    ), creatable=False, updatable=False),
)

SERVICES: dict[str, Service] = {s.path: s for s in (BUSINESS_PARTNER, SALES_ORDER, OUTBOUND_DELIVERY,
                                                      BILLING_DOCUMENT)}


def edmx(service: Service) -> str:
    """The service's `$metadata` document (EDMX 1.0 / OData V2 with SAP annotations)."""
    ns = service.namespace
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
           'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
           'xmlns:sap="http://www.sap.com/Protocols/SAPData">',
           '<edmx:DataServices m:DataServiceVersion="2.0">',
           f'<Schema Namespace="{ns}" xml:lang="en" sap:schema-version="1" '
           'xmlns="http://schemas.microsoft.com/ado/2008/09/edm">']
    associations: list[tuple[str, EntitySet, Nav]] = []
    for es in service.sets.values():
        out.append(f'<EntityType Name="{es.type_name}" sap:content-version="1"><Key>')
        out += [f'<PropertyRef Name="{k}"/>' for k in es.keys]
        out.append("</Key>")
        for p in es.props:
            attrs = [f'Name="{p.name}"', f'Type="{p.type}"']
            if not p.nullable:
                attrs.append('Nullable="false"')
            if p.max_length is not None:
                attrs.append(f'MaxLength="{p.max_length}"')
            if p.precision is not None:
                attrs.append(f'Precision="{p.precision}"')
            if p.scale is not None:
                attrs.append(f'Scale="{p.scale}"')
            if p.concurrency:
                attrs.append('ConcurrencyMode="Fixed"')
            if not p.creatable:
                attrs.append('sap:creatable="false"')
            if not p.updatable:
                attrs.append('sap:updatable="false"')
            out.append(f"<Property {' '.join(attrs)}/>")
        for nav in es.navs:
            assoc = f"assoc_{es.name}_{nav.name}"
            associations.append((assoc, es, nav))
            out.append(f'<NavigationProperty Name="{nav.name}" Relationship="{ns}.{assoc}" '
                       f'FromRole="FromRole_{assoc}" ToRole="ToRole_{assoc}"/>')
        out.append("</EntityType>")
    for assoc, es, nav in associations:
        target = service.sets[nav.target]
        out.append(f'<Association Name="{assoc}" sap:content-version="1">'
                   f'<End Type="{ns}.{es.type_name}" Multiplicity="1" Role="FromRole_{assoc}"/>'
                   f'<End Type="{ns}.{target.type_name}" Multiplicity="{"*" if nav.many else "0..1"}" '
                   f'Role="ToRole_{assoc}"/></Association>')
    out.append(f'<EntityContainer Name="{ns}_Entities" m:IsDefaultEntityContainer="true" '
               'sap:supported-formats="atom json xlsx">')
    for es in service.sets.values():
        flags = "".join(f' sap:{flag}="false"' for flag, on in (
            ("creatable", es.creatable), ("updatable", es.updatable), ("deletable", es.deletable)) if not on)
        out.append(f'<EntitySet Name="{es.name}" EntityType="{ns}.{es.type_name}"{flags} sap:content-version="1"/>')
    for assoc, es, nav in associations:
        out.append(f'<AssociationSet Name="{assoc}_Set" Association="{ns}.{assoc}" sap:creatable="false" '
                   f'sap:updatable="false" sap:deletable="false" sap:content-version="1">'
                   f'<End EntitySet="{es.name}" Role="FromRole_{assoc}"/>'
                   f'<End EntitySet="{nav.target}" Role="ToRole_{assoc}"/></AssociationSet>')
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "\n".join(out)


__all__ = ["SERVICES", "EntitySet", "Nav", "Prop", "Service", "edmx", "quoteattr"]
