from crm_gateway.main import cli

cli()
