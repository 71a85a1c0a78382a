"""Alert rules, collector config and dashboard: well-formed and about the metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from crm_sap.adapters import metrics as sap_metrics
from crmkit import metrics as crmkit_metrics

OBS = Path(__file__).resolve().parents[2] / "deploy" / "observability"
# Every metric a CRM process exports is defined in crmkit.metrics, or in a service's own metrics
# module (the SAP integration's queue).
EXPORTED_METRICS = {
    m._name + ("_total" if m._type == "counter" else "")
    for module in (crmkit_metrics, sap_metrics)
    for m in vars(module).values() if isinstance(m, MetricWrapperBase)
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
    "crm_dependency_up",
    "crm_consumer_dead_letters_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def metric_names(expr: str) -> set[str]:
    """The exported metrics an expression reads (recording rules' own `a:b:c` names left out)."""
    names = set()
    for m in re.findall(r"\bcrm_[a-z_:0-9]+", expr):
        if ":" in m:
            continue
        for suffix in HISTOGRAM_SUFFIXES:
            if m.endswith(suffix) and m.removesuffix(suffix) in EXPORTED_METRICS:
                m = m.removesuffix(suffix)
        names.add(m)
    return names


# Saturation: charted, not alerted (its limit is each service's CRM_DATABASE_POOL_SIZE).
CHARTED_METRICS = {"crm_db_pool_connections_in_use"}


def all_rule_exprs() -> list[str]:
    """Alerting and recording rules: an alert may read a metric through a recorded series."""
    doc = yaml.safe_load((OBS / "prometheus-rules.yaml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def rules() -> list[dict]:
    """The alerting rules (recording rules feed them)."""
    doc = yaml.safe_load((OBS / "prometheus-rules.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


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
    exprs = all_rule_exprs() + dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= EXPORTED_METRICS, used - EXPORTED_METRICS
    alerted = set().union(*(metric_names(e) for e in all_rule_exprs()))
    assert alerted >= CONTRACT_METRICS, CONTRACT_METRICS - alerted
    charted = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert charted >= CONTRACT_METRICS | CHARTED_METRICS, (CONTRACT_METRICS | CHARTED_METRICS) - charted


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
