"""The transactional outbox: events are rows written with the change, published by a relay."""
