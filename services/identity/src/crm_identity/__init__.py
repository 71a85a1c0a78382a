"""Identity, organisation and access; the tamper-evident audit trail."""
