from crm_opportunities.main import cli

cli()
