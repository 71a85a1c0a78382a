"""The SAP integration's settings (`CRM_SAP_…`)."""

from __future__ import annotations

from pydantic import SecretStr

from crm_sap.domain.model import SapDefaults
from crmkit.settings import ServiceSettings


class SapSettings(ServiceSettings):
    grpc_port: int = 50108
    metrics_port: int = 9108
    # The S/4HANA system: https://my000000-api.s4hana.cloud.sap (no path), a communication user.
    sap_base_url: str = "http://127.0.0.1:50280"
    sap_user: str = "CRM_INTEGRATION"
    sap_password: SecretStr = SecretStr("")
    # sap-client query parameter (on-premise systems with several clients); empty: the default client.
    sap_client: str = ""
    sap_timeout_seconds: float = 30.0
    # Inbound delta pulls: how often, and the $top of each page.
    sap_poll_interval_seconds: float = 30.0
    sap_page_size: int = 200
    # Outbound: how many queued changes one worker pass applies; how often the worker looks.
    sap_outbound_batch_size: int = 50
    sap_outbound_interval_seconds: float = 2.0
    sap_retry_base_seconds: float = 5.0
    sap_retry_max_seconds: float = 900.0
    # A claimed change is retried by another worker if the claimer dies for this long.
    sap_claim_seconds: float = 120.0
    # SAP organisational data the CRM does not know.
    sap_bp_grouping: str = "BP02"
    sap_language: str = "ZH"
    sap_sales_organization: str = "1010"
    sap_distribution_channel: str = "10"
    sap_division: str = "00"
    sap_sales_order_type: str = "OR"
    sap_payment_terms: str = "0001"
    sap_price_condition: str = "PPR0"
    sap_rejection_reason: str = "02"
    sap_delivery_block: str = "01"

    def sap_defaults(self) -> SapDefaults:
        return SapDefaults(
            bp_grouping=self.sap_bp_grouping, language=self.sap_language,
            sales_organization=self.sap_sales_organization, distribution_channel=self.sap_distribution_channel,
            division=self.sap_division, sales_order_type=self.sap_sales_order_type,
            payment_terms=self.sap_payment_terms, price_condition=self.sap_price_condition,
            rejection_reason=self.sap_rejection_reason, delivery_block=self.sap_delivery_block)
