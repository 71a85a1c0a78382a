"""The SAP integration's own metrics (R-SAP-03): queue depth, oldest pending change, outcomes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

QUEUE_DEPTH = Gauge("crm_sap_outbound_queue_depth", "CRM changes queued for SAP, not yet applied")
OLDEST_PENDING = Gauge("crm_sap_outbound_oldest_pending_seconds", "Age of the oldest change not yet in SAP")
PARKED = Gauge("crm_sap_outbound_parked", "Changes SAP refused, waiting for an operator")
APPLIED = Counter("crm_sap_outbound_applied_total", "Changes applied to SAP", ["kind"])
FAILURES = Counter("crm_sap_outbound_failures_total", "Failed attempts to apply a change, by kind and class",
                   ["kind", "error"])
INBOUND = Counter("crm_sap_inbound_documents_total", "SAP documents pulled and published", ["entity_set"])
CONTRACT_MISSING = Gauge("crm_sap_contract_missing", "Entity sets and properties the integration uses that the "
                         "SAP system's $metadata lacks", ["service"])
INBOUND_ERRORS = Counter("crm_sap_inbound_errors_total", "Failed delta pulls", ["entity_set"])
