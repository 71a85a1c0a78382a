"""The contracts service: contracts, amendments, approval workflows from the org chart, receivable
plans, renewals (R-CON-01..04)."""
