from crm_orders.main import cli

cli()
