"""Edges of the customers service: database tables and repositories, the gRPC API."""
