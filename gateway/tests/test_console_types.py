"""The web console's API types (web/src/api/schema.d.ts) are generated from gateway/openapi.json by
`make openapi`; like the document itself, they must not drift from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("crm_tools_openapi_types", ROOT / "tools" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_console_types_match_the_openapi_document(tmp_path: Path):
    tool = _tool()
    generated = tmp_path / "schema.d.ts"
    tool.render_types(ROOT / "gateway" / "openapi.json", generated)
    checked_in = tool.TYPES.read_text(encoding="utf-8")
    assert "export interface paths" in checked_in
    assert generated.read_text(encoding="utf-8") == checked_in, (
        "web/src/api/schema.d.ts is out of date with gateway/openapi.json: run `make openapi` and commit the result")
