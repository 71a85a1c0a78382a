"""`make bench`: throughput and latency of the suite's layers, measured in one run."""
