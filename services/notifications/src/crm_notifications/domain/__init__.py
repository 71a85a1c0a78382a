"""Pure rules: recipients, templates, signatures, schedules. No I/O."""
