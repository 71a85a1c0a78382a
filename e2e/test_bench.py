"""`make bench` stays runnable: a tiny run through every layer produces a complete report."""

from __future__ import annotations

from e2e.bench.__main__ import CONCURRENCY, run


async def test_a_small_benchmark_run_reports_every_layer() -> None:
    report = await run(requests=20, events=5, import_rows=300, import_small_rows=60, import_existing=400,
                       funnel_opportunities=400)
    assert set(report["levels"]) == {str(c) for c in CONCURRENCY}
    for level in report["levels"].values():
        for layer in ("gateway_get", "grpc_get", "sql_get", "gateway_post"):
            figures = level[layer]
            assert figures["requests"] == 20
            assert figures["throughput_rps"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert level["ratios_p50"]["gateway_over_grpc"] > 0
    assert report["event_latency"]["events"] == 5
    imported = report["customer_import"]
    for label, rows in (("small", 60), ("full", 300)):
        figures = imported["import"][label]
        assert figures["rows"] == rows
        # every row is created, skipped on a match with an existing customer, or a repeat within the file
        assert figures["created"] + figures["skipped"] + figures["rejected"] == rows and figures["created"] > 0
        assert figures["rows_per_s"] > 0 and figures["service_peak_rss_mib"] > 0
    assert 0 < imported["copy"]["rows"] <= 300 and imported["copy"]["rows_per_s"] > 0
    assert imported["import_over_copy_time"] > 0
    funnel = report["funnel"]
    assert funnel["opportunities"] == 400
    for case, figures in funnel["gateway_funnel"].items():
        assert 0 < figures["p50_ms"] <= figures["p99_ms"], case
    assert funnel["gateway_funnel"]["whole_pipeline"]["opportunities_counted"] == 400
    assert funnel["gateway_funnel"]["one_owner"]["opportunities_counted"] == 10  # 400 over 40 owners
