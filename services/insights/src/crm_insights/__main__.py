from crm_insights.main import cli

cli()
