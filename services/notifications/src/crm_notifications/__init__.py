"""The notifications service: rules, templates, preferences, inbox, email, webhooks and chat robots (R-NOT-01..03)."""
