"""Database tables and repository, the gRPC servicer, the identity directory and the channel senders."""
