"""REST resources, one module per service they front."""
