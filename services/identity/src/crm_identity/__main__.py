from crm_identity.main import cli

cli()
