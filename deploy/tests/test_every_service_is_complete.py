"""A service is done when it has everything a service needs to ship (the developers' guide):
this checks each package under services/ for its companions, so a new one cannot forget one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Test doubles of external systems: run by `make dev` and the tests, never deployed.
NOT_DEPLOYED = {"sap-simulator"}
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")
                  if p.parent.name not in NOT_DEPLOYED)


def _suite_services() -> set[str]:
    config = tomllib.loads((ROOT / "deploy" / "local" / "suite.toml").read_text())
    return {s["name"] for s in config.get("services", [])}


def _skaffold_modules() -> set[str]:
    return {d["metadata"]["name"] for d in yaml.safe_load_all((ROOT / "skaffold.yaml").read_text()) if d}


def _umbrella_dependencies() -> set[str]:
    meta = yaml.safe_load((ROOT / "charts" / "crm-suite" / "Chart.yaml").read_text())
    return {d["name"] for d in meta["dependencies"]}


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_every_companion(service: str) -> None:
    folder = ROOT / "services" / service
    package = "crm_" + service.replace("-", "_")
    api = ROOT / "proto" / "crm" / service / "v1" / f"{service}.proto"
    missing = [what for what, ok in {
        "Alembic migrations": any((folder / "migrations" / "versions").glob("0001_*.py")),
        "domain/ app/ adapters/": all((folder / "src" / package / d).is_dir() for d in ("domain", "app", "adapters")),
        "tests": any((folder / "tests").glob("test_*.py")),
        f"its API in proto/crm/{service}/v1/{service}.proto": api.is_file(),
        f"charts/{service}": (ROOT / "charts" / service / "Chart.yaml").is_file(),
        "a skaffold module": service in _skaffold_modules(),
        "a place in the umbrella chart": service in _umbrella_dependencies(),
        "a place in deploy/local/suite.toml (make dev, e2e)": service in _suite_services(),
        f"docs/services/{service}.md": (ROOT / "docs" / "services" / f"{service}.md").is_file(),
    }.items() if not ok]
    assert not missing, f"services/{service} lacks: {', '.join(missing)}"
