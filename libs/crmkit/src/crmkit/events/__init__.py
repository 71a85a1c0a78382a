"""Integration events over NATS JetStream: the envelope, streams and the consumer."""
