"""The SAP S/4HANA integration: id mapping, durable outbound queue, delta inbound pulls, sync log,
drift (R-SAP-01..03)."""
