from crm_notifications.main import cli

cli()
