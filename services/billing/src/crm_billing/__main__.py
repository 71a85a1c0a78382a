from crm_billing.main import cli

cli()
