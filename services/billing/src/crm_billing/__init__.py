"""The billing service: invoices, credit notes, payments and allocations, reconciliation statements,
aging (R-BIL-01..04)."""
