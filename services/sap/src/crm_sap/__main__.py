from crm_sap.main import cli

cli()
