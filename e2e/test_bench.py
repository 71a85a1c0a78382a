"""`make bench` stays runnable: a tiny run through every layer produces a complete report."""

from __future__ import annotations

from e2e.bench.__main__ import CONCURRENCY, run


async def test_a_small_benchmark_run_reports_every_layer() -> None:
    report = await run(requests=20, events=5)
    assert set(report["levels"]) == {str(c) for c in CONCURRENCY}
    for level in report["levels"].values():
        for layer in ("gateway_get", "grpc_get", "sql_get", "gateway_post"):
            figures = level[layer]
            assert figures["requests"] == 20
            assert figures["throughput_rps"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert level["ratios_p50"]["gateway_over_grpc"] > 0
    assert report["event_latency"]["events"] == 5
