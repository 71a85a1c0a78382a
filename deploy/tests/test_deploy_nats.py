"""The bus in the charts: each service connects as its own NATS user over TLS, and the NATS chart
values that define those users are exactly what crmkit.events.permissions generates."""

from __future__ import annotations

from pathlib import Path

import yaml

from crmkit.events.permissions import SUITE, helm_values_yaml

CLUSTER_SIZE = {"dev": 1, "prod": 3}


def config_map_env(docs: list[dict], name: str) -> dict:
    return next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{name}-env")


def container_env(docs: list[dict], name: str) -> dict:
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.get("env", [])}


def test_committed_nats_values_are_the_generated_ones(layout) -> None:
    assert sorted(layout["environments"]) == sorted(CLUSTER_SIZE)
    for env, size in CLUSTER_SIZE.items():
        path: Path = layout["root"] / "deploy" / "environments" / env / "nats-values.yaml"
        assert path.read_text() == helm_values_yaml(size), (
            f"{path} is stale: python -m crmkit.events.permissions helm-values {size} > {path}")


def test_nats_values_define_one_user_per_process_and_tls(layout) -> None:
    values = yaml.safe_load((layout["root"] / "deploy" / "environments" / "prod" / "nats-values.yaml").read_text())
    assert values["config"]["nats"]["tls"] == {"enabled": True, "secretName": "nats-server-tls"}
    users = values["config"]["merge"]["authorization"]["users"]
    assert sorted(u["user"] for u in users) == sorted(SUITE)
    for user in users:
        env_name = user["password"].removeprefix("<< $").removesuffix(" >>")
        assert values["container"]["env"][env_name]["valueFrom"]["secretKeyRef"]["key"] == user["user"]
        assert "crm.>" not in user["permissions"]["publish"]["allow"]
        assert ">" not in user["permissions"]["subscribe"]["allow"]
    cert = yaml.safe_load((layout["root"] / "deploy" / "environments" / "prod" / "nats-certificate.yaml").read_text())
    assert cert["kind"] == "Certificate" and cert["spec"]["secretName"] == "nats-server-tls"


def test_every_service_connects_as_its_own_user_over_tls(render, layout) -> None:
    for chart in layout["apps"]:
        assert chart in SUITE, f"{chart} has no NATS user in crmkit.events.permissions.SUITE"
        for env in [None, *layout["environments"]]:
            docs = render(chart, env)
            config = config_map_env(docs, chart)
            assert config["CRM_NATS_USER"] == chart
            assert config["CRM_NATS_URL"].startswith("tls://")
            secrets = container_env(docs, chart)
            assert secrets["CRM_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "crm-nats-credentials", "key": chart}
            assert secrets["CRM_NATS_CA_PEM"]["valueFrom"]["secretKeyRef"] == {"name": "crm-nats-ca", "key": "ca.crt"}
