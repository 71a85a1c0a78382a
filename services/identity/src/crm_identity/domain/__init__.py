"""Pure rules: the org tree, passwords and lockout, roles and scopes, the audit hash chain."""
