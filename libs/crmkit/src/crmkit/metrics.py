"""The Prometheus metrics every process exposes. Names are shared with the alert rules and
dashboards in deploy/observability, so they are defined once, here."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRPC_HANDLED = Counter(
    "crm_grpc_server_handled_total", "RPCs completed, by status code", ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "crm_grpc_server_handling_seconds", "RPC handling time", ["service", "method"],
    buckets=LATENCY_BUCKETS)
HTTP_REQUESTS = Counter(
    "crm_http_requests_total", "HTTP requests, by route and status", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "crm_http_request_duration_seconds", "HTTP request time", ["route", "method"],
    buckets=LATENCY_BUCKETS)
OUTBOX_BACKLOG = Gauge(
    "crm_outbox_backlog", "Events committed but not yet published", ["service"])
OUTBOX_OLDEST_PENDING = Gauge(
    "crm_outbox_oldest_pending_seconds", "Age of the oldest unpublished event", ["service"])
OUTBOX_PUBLISHED = Counter(
    "crm_outbox_published_total", "Events published to NATS", ["service"])
OUTBOX_PUBLISH_FAILURES = Counter(
    "crm_outbox_publish_failures_total", "Failed publish attempts (retried)", ["service"])
CONSUMER_HANDLED = Counter(
    "crm_consumer_handled_total", "Events handled, by outcome", ["consumer", "subject", "outcome"])
CONSUMER_REDELIVERIES = Counter(
    "crm_consumer_redeliveries_total", "Events delivered more than once", ["consumer"])
CONSUMER_LAG = Gauge(
    "crm_consumer_pending", "Messages in the stream not yet delivered to the consumer", ["consumer"])
CONSUMER_DEAD_LETTERS = Counter(
    "crm_consumer_dead_letters_total", "Events moved to the dead-letter stream", ["consumer"])
DB_POOL_IN_USE = Gauge("crm_db_pool_connections_in_use", "Checked-out database connections", ["service"])
DEPENDENCY_UP = Gauge(
    "crm_dependency_up", "1 while a dependency passes the readiness check (crmkit.service.Readiness)",
    ["service", "dependency"])


def start_metrics_server(port: int) -> None:
    start_http_server(port)
