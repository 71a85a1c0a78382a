"""A runnable simulator of the four S/4HANA OData services the suite uses, with fault injection (dev and tests only)."""
