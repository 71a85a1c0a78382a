"""Use cases: event handling, the inbox, preferences, rules, webhooks and the delivery worker."""
