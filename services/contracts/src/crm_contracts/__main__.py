from crm_contracts.main import cli

cli()
