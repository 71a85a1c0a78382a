"""End-to-end scenarios against the whole suite started as processes, and the benchmarks."""
