"""The contracts in proto/ are linted, backward compatible with the last commit on main, and the
code and docs generated from them are current."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
sys.path.insert(0, str(ROOT / "tools"))

import events_catalogue  # noqa: E402
import protogen  # noqa: E402


@pytest.fixture(scope="module")
def buf() -> Path:
    if not BUF.exists():
        subprocess.run(["npm", "ci", "--prefix", str(ROOT / "tools"), "--no-audit", "--no-fund"], check=True)
    return BUF


def _differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    diffs = [*cmp.left_only, *cmp.right_only, *cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        diffs += [f"{name}/{d}" for d in _differences(Path(sub.left), Path(sub.right))]
    return diffs


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    stale = _differences(tmp_path / "crm", protogen.OUTPUT_DIR / "crm")
    assert not stale, f"libs/crm-proto is stale ({stale}); run `make proto`"


def test_events_catalogue_matches_proto() -> None:
    current = events_catalogue.TARGET.read_text(encoding="utf-8")
    assert current == events_catalogue.render(), "docs/events.md is stale; run `make proto`"


def test_every_event_has_a_subject_in_its_services_namespace() -> None:
    rendered = events_catalogue.render()
    rows = [line for line in rendered.splitlines() if line.startswith("| `crm.")]
    assert rows, "no events found"
    for row in rows:
        subject, message = (cell.strip(" `") for cell in row.split("|")[1:3])
        service = message.split(".")[1]
        assert subject.startswith(f"crm.{service}."), f"{message} publishes outside crm.{service}.>"
        assert len(subject.split(".")) == 4, f"{subject} is not crm.<service>.<entity>.<fact>"


def test_buf_lint(buf: Path) -> None:
    result = subprocess.run([str(buf), "lint"], cwd=ROOT / "proto", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _baseline() -> str | None:
    """The commit to stay compatible with: main's tip from a branch, the previous commit on main."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head, main = git("rev-parse", "HEAD"), git("rev-parse", "--verify", "-q", "main")
    base = git("merge-base", "HEAD", main) if main and main != head else git("rev-parse", "-q", "--verify", "HEAD~1")
    if not base or not git("ls-tree", base, "proto/buf.yaml"):
        return None
    return base


def test_buf_breaking_against_main(buf: Path) -> None:
    base = _baseline()
    if base is None:
        # Nothing published before this commit, so nothing can break; the check still runs on
        # every later commit.
        return
    result = subprocess.run([str(buf), "breaking", "proto", "--against", f".git#ref={base},subdir=proto"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"breaking change against {base[:10]}:\n{result.stdout}{result.stderr}"
