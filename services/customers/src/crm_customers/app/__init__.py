"""Use cases of the customers service: one small function per command or query."""
