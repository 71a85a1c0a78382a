"""The customers domain: entities and rules in plain Python, no I/O."""
