"""The insights service: the morning dashboard and sales targets."""
