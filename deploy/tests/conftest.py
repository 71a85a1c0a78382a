"""Fixtures for the deployment checks: a helm binary and the charts rendered offline."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
ENVIRONMENTS = ROOT / "deploy" / "environments"
HELM = ROOT / "tools" / "bin" / "helm"
LIBRARY = "crm-service"
# The Kubernetes version charts are rendered and validated for: the one the helm/kubectl layer
# targets, and the oldest minor the suite is expected to run on.
KUBE_VERSION = "1.33.0"


def chart_meta(name: str) -> dict:
    return yaml.safe_load((CHARTS / name / "Chart.yaml").read_text())


def all_charts() -> list[str]:
    return sorted(p.parent.name for p in CHARTS.glob("*/Chart.yaml"))


def app_charts() -> list[str]:
    """Charts of one service: those built directly on the library."""
    return [
        c
        for c in all_charts()
        if any(d["name"] == LIBRARY for d in chart_meta(c).get("dependencies", []))
    ]


def umbrella_charts() -> list[str]:
    apps = set(app_charts())
    return [
        c
        for c in all_charts()
        if any(d["name"] in apps for d in chart_meta(c).get("dependencies", []))
    ]


def environments() -> list[str]:
    return sorted(p.parent.name for p in ENVIRONMENTS.glob("*/values.yaml"))


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """Runs helm, installing it first. Never skips: CI must prove the charts, not pass blind."""
    if not HELM.exists():
        script = ROOT / "tools" / "install-helm.sh"
        subprocess.run([shutil.which("bash") or "/bin/bash", str(script)], check=True, timeout=600)
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        # Keep helm away from the user's repositories and cache.
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(HELM), *args], env=env, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    run("version", "--short")
    return run


@pytest.fixture(scope="session")
def charts_dir(helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every file:// dependency built, leaving the work tree untouched."""
    dest = tmp_path_factory.mktemp("charts") / "charts"
    shutil.copytree(
        CHARTS, dest, symlinks=True, ignore=shutil.ignore_patterns("charts", "Chart.lock", "*.tgz")
    )
    # Apps before umbrellas: an umbrella packages its apps together with their built deps.
    for chart in [*app_charts(), *umbrella_charts()]:
        helm("dependency", "update", "--skip-refresh", str(dest / chart))
    return dest


def values_for(chart: str, env: str | None) -> dict | None:
    """An environment's values for a chart: the umbrella takes the file as is; a service chart
    deployed alone takes the file's `global` plus the section named after it."""
    if env is None:
        return None
    values = yaml.safe_load((ENVIRONMENTS / env / "values.yaml").read_text()) or {}
    if chart in umbrella_charts():
        return values
    return {"global": values.get("global", {}), **values.get(chart, {})}


@pytest.fixture(scope="session")
def render(helm, charts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cache: dict[tuple[str, str | None], list[dict]] = {}

    def _render(chart: str, env: str | None = None) -> list[dict]:
        if (chart, env) not in cache:
            args = [
                "template",
                "crm",
                str(charts_dir / chart),
                "--namespace",
                "crm",
                "--kube-version",
                KUBE_VERSION,
            ]
            values = values_for(chart, env)
            if values is not None:
                path = tmp_path_factory.mktemp("values") / f"{chart}-{env}.yaml"
                path.write_text(yaml.safe_dump(values))
                args += ["-f", str(path)]
            out = helm(*args).stdout
            cache[chart, env] = [d for d in yaml.safe_load_all(out) if d]
        return cache[chart, env]

    return _render


# Test modules cannot import this file under --import-mode=importlib, so the chart layout
# reaches them through parametrization and fixtures.
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cases = {
        "any_chart": all_charts,
        "app_chart": app_charts,
        "render_case": lambda: [
            (chart, env)
            for chart in [*app_charts(), *umbrella_charts()]
            for env in [None, *environments()]
        ],
    }
    for name, make in cases.items():
        if name in metafunc.fixturenames:
            values = make()
            metafunc.parametrize(
                name,
                values,
                ids=[
                    str(v) if isinstance(v, str) else f"{v[0]}-{v[1] or 'default'}" for v in values
                ],
            )


@pytest.fixture(scope="session")
def layout() -> dict:
    return {
        "root": ROOT,
        "charts": CHARTS,
        "library": LIBRARY,
        "all": all_charts(),
        "apps": app_charts(),
        "umbrellas": umbrella_charts(),
        "environments": environments(),
        "kube_version": KUBE_VERSION,
        "values_for": values_for,
    }
