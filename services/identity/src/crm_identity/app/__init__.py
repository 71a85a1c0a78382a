"""Use cases: tokens, the org chart, partner clients, the audit trail."""
