"""The `crm` command line: talks to the gateway's REST API (imports with a progress bar, …)."""
