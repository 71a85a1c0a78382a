"""The alert rules, unit-tested with promtool against the series the processes export: a label
typo or a wrong code name fails here, not silently in production. Every alert has a promtool
test and a runbook page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
RUNBOOK_URL = re.compile(r"https://git\.example\.invalid/crm/crm/-/blob/main/(docs/runbooks/[a-z0-9-]+\.md)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make bootstrap` installs it (Debian package prometheus)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=OBS)


def _alerts() -> list[dict]:
    doc = yaml.safe_load((OBS / "prometheus-rules.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_rules_are_valid_promql() -> None:
    run = _promtool("check", "rules", "prometheus-rules.yaml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_rules_pass_their_unit_tests() -> None:
    run = _promtool("test", "rules", "prometheus-rules.test.yaml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_is_tested_and_has_a_runbook() -> None:
    tests = yaml.safe_load((OBS / "prometheus-rules.test.yaml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    for alert in _alerts():
        assert alert["alert"] in tested, f"{alert['alert']} has no promtool test that makes it fire"
        match = RUNBOOK_URL.fullmatch(alert["annotations"].get("runbook_url", ""))
        assert match, f"{alert['alert']}: runbook_url must point into docs/runbooks/"
        assert (ROOT / match[1]).is_file(), f"{alert['alert']}: {match[1]} does not exist"


def test_the_umbrella_ships_the_tested_rules_unchanged(render) -> None:
    (rule,) = [d for d in render("crm-suite", "prod") if d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load((OBS / "prometheus-rules.yaml").read_text())["groups"]
