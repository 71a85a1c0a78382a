from crm_customers.main import cli

cli()
