"""Alert rules, collector config and dashboard: well-formed and about the metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from crmkit import metrics as crmkit_metrics

OBS = Path(__file__).resolve().parents[2] / "deploy" / "observability"
# Every metric a CRM process exports is defined in crmkit.metrics.
EXPORTED_METRICS = {
    m._name + ("_total" if m._type == "counter" else "")
    for m in vars(crmkit_metrics).values() if isinstance(m, MetricWrapperBase)
}
# The ones an operator must be alerted on and see charted.
CONTRACT_METRICS = {
    "crm_grpc_server_handled_total",
    "crm_grpc_server_handling_seconds",
    "crm_outbox_backlog",
    "crm_outbox_oldest_pending_seconds",
    "crm_consumer_redeliveries_total",
    "crm_http_requests_total",
    "crm_http_request_duration_seconds",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def metric_names(expr: str) -> set[str]:
    names = set()
    for m in re.findall(r"\bcrm_[a-z_]+", expr):
        for suffix in HISTOGRAM_SUFFIXES:
            if m.endswith(suffix) and m.removesuffix(suffix) in EXPORTED_METRICS:
                m = m.removesuffix(suffix)
        names.add(m)
    return names


def rules() -> list[dict]:
    doc = yaml.safe_load((OBS / "prometheus-rules.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads((OBS / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_alert_rules_are_complete() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for r in rules():
        assert r["labels"]["severity"] in {"warning", "critical"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]


def test_only_contract_metrics_are_used_and_all_are_covered() -> None:
    exprs = [r["expr"] for r in rules()] + dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= EXPORTED_METRICS, used - EXPORTED_METRICS
    alerted = set().union(*(metric_names(r["expr"]) for r in rules()))
    assert alerted >= CONTRACT_METRICS, CONTRACT_METRICS - alerted
    charted = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert charted >= CONTRACT_METRICS, CONTRACT_METRICS - charted


def test_dashboard_is_importable() -> None:
    dash = json.loads((OBS / "grafana-dashboard.json").read_text())
    assert dash["uid"] and dash["title"]
    ids = [t["refId"] for p in dash["panels"] for t in p.get("targets", [])]
    assert ids
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "service"} <= variables
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]


def test_collector_pipelines_use_declared_components() -> None:
    cfg = yaml.safe_load((OBS / "otel-collector.yaml").read_text())
    pipelines = cfg["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    for name, p in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in p[kind]:
                assert component in cfg[kind], f"{name}: {component} is not declared"
        assert p["processors"][0] == "memory_limiter", name
        assert p["processors"][-1] == "batch", name
        assert p["receivers"] == ["otlp"], name
    for ext in cfg["service"].get("extensions", []):
        assert ext in cfg["extensions"]
