"""Database tables and repository, the gRPC servicer."""
