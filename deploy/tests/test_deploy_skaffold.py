"""skaffold.yaml cannot be run here; check that its modules point at real things."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def configs() -> list[dict]:
    docs = [d for d in yaml.safe_load_all((ROOT / "skaffold.yaml").read_text()) if d]
    for d in docs:
        assert d["apiVersion"].startswith("skaffold/v4") and d["kind"] == "Config"
    return docs


def modules(configs: list[dict]) -> dict[str, dict]:
    names = [c["metadata"]["name"] for c in configs]
    assert len(names) == len(set(names)), "module names must be unique"
    return dict(zip(names, configs, strict=True))


def service_modules(configs: list[dict]) -> dict[str, dict]:
    return {n: c for n, c in modules(configs).items() if "build" in c}


def test_every_module_builds_and_deploys_its_own_chart(configs) -> None:
    services = service_modules(configs)
    assert services
    for name, cfg in services.items():
        (artifact,) = cfg["build"]["artifacts"]
        context = ROOT / artifact.get("context", ".")
        assert (context / artifact["docker"]["dockerfile"]).is_file(), name
        assert artifact["docker"]["buildArgs"]["PACKAGE"] == artifact["image"]
        (release,) = cfg["manifests"]["helm"]["releases"]
        assert release["name"] == name
        chart = ROOT / release["chartPath"]
        assert (chart / "Chart.yaml").is_file(), name
        assert chart.name == name, "a module deploys the chart of the same name"
        # The built image must be the one deployed.
        suffix = artifact["image"].replace("-", "_")
        templates = release["setValueTemplates"]
        assert templates["image.repository"] == f"{{{{.IMAGE_REPO_{suffix}}}}}"
        assert f"IMAGE_TAG_{suffix}" in templates["image.tag"]
        assert "helm" in cfg["deploy"]


def test_every_service_chart_has_a_module(configs, layout) -> None:
    assert set(service_modules(configs)) == set(layout["apps"])


def test_suite_module_requires_every_service(configs) -> None:
    suite = modules(configs)["crm-suite"]
    required = {name for r in suite["requires"] for name in r["configs"]}
    assert required == set(service_modules(configs))
