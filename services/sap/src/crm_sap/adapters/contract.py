"""What this client uses of SAP's four APIs: entity sets, properties and navigations it reads or
writes, and the properties it filters on. The conformance test holds these against SAP's
published EDMX; `ODataClient.metadata` can check them against a live system's `$metadata`."""

from __future__ import annotations

from crm_sap.adapters.odata import BILLING_DOCUMENT, BUSINESS_PARTNER, OUTBOUND_DELIVERY, SALES_ORDER

USED: dict[str, dict[str, list[str]]] = {
    BUSINESS_PARTNER: {
        "A_BusinessPartner": ["BusinessPartner", "Customer", "BusinessPartnerCategory", "BusinessPartnerGrouping",
                              "OrganizationBPName1", "OrganizationBPName2", "SearchTerm1",
                              "BusinessPartnerIDByExtSystem", "Language", "CorrespondenceLanguage",
                              "to_BusinessPartnerRole", "to_BusinessPartnerAddress", "to_Customer"],
        "A_BusinessPartnerRole": ["BusinessPartner", "BusinessPartnerRole"],
        "A_BusinessPartnerAddress": ["BusinessPartner", "AddressID", "Country", "CityName", "PostalCode",
                                     "StreetName", "Language"],
        "A_Customer": ["Customer", "to_CustomerSalesArea"],
        "A_CustomerSalesArea": ["Customer", "SalesOrganization", "DistributionChannel", "Division", "Currency",
                                "CustomerPaymentTerms"],
    },
    SALES_ORDER: {
        "A_SalesOrder": ["SalesOrder", "SalesOrderType", "SalesOrganization", "DistributionChannel",
                         "OrganizationDivision", "SoldToParty", "PurchaseOrderByCustomer", "RequestedDeliveryDate",
                         "TransactionCurrency", "LastChangeDateTime", "OverallSDProcessStatus",
                         "OverallTotalDeliveryStatus", "OverallOrdReltdBillgStatus", "DeliveryBlockReason",
                         "to_Item", "to_Partner"],
        "A_SalesOrderItem": ["SalesOrder", "SalesOrderItem", "Material", "SalesOrderItemText", "RequestedQuantity",
                             "RequestedQuantityUnit", "SalesDocumentRjcnReason", "to_PricingElement"],
        "A_SalesOrderItemPrElement": ["ConditionType", "ConditionRateValue", "ConditionCurrency"],
        "A_SalesOrderHeaderPartner": ["PartnerFunction", "Customer"],
    },
    OUTBOUND_DELIVERY: {
        "A_OutbDeliveryHeader": ["DeliveryDocument", "SoldToParty", "OverallGoodsMovementStatus",
                                 "ActualGoodsMovementDate", "DeliveryVersion", "BillOfLading", "MeansOfTransport",
                                 "CreationDate", "LastChangeDate", "to_DeliveryDocumentItem"],
        "A_OutbDeliveryItem": ["DeliveryDocument", "DeliveryDocumentItem", "Material", "ActualDeliveryQuantity",
                               "DeliveryQuantityUnit", "ReferenceSDDocument", "ReferenceSDDocumentItem"],
    },
    BILLING_DOCUMENT: {
        "A_BillingDocument": ["BillingDocument", "BillingDocumentType", "SDDocumentCategory", "BillingDocumentDate",
                              "LastChangeDateTime", "SoldToParty", "TotalNetAmount", "TaxAmount", "TotalGrossAmount",
                              "TransactionCurrency", "BillingDocumentIsCancelled", "to_Item"],
        "A_BillingDocumentItem": ["SalesDocument", "ReferenceSDDocument"],
    },
}

# (entity set, property) pairs used in $filter.
FILTERED: dict[str, list[tuple[str, str]]] = {
    BUSINESS_PARTNER: [("A_BusinessPartner", "BusinessPartnerIDByExtSystem")],
    SALES_ORDER: [("A_SalesOrder", "PurchaseOrderByCustomer"), ("A_SalesOrder", "SoldToParty"),
                  ("A_SalesOrder", "LastChangeDateTime")],
    OUTBOUND_DELIVERY: [("A_OutbDeliveryHeader", "CreationDate"), ("A_OutbDeliveryHeader", "LastChangeDate")],
    BILLING_DOCUMENT: [("A_BillingDocument", "LastChangeDateTime")],
}
