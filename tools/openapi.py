"""Writes the gateway's OpenAPI document to gateway/openapi.json and the web console's types
generated from it to web/src/api/schema.d.ts (`make openapi`).

Both are checked in so API changes show up in review; a test fails when either drifts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crm_gateway.main import create_app
from crm_gateway.settings import GatewaySettings
from crmkit.auth.keys import generate_keypair, jwks_of

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "gateway" / "openapi.json"
WEB = ROOT / "web"
TYPES = WEB / "src" / "api" / "schema.d.ts"


def render() -> str:
    # Keys only let the app be built; they do not appear in the document.
    key = generate_keypair()
    app = create_app(GatewaySettings(jwt_jwks=jwks_of(key.public_pem), principal_private_key=key.private_pem))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render_types(document: Path, target: Path) -> None:
    """The console's TypeScript types for `document` (openapi-typescript, pinned in web/)."""
    generator = WEB / "node_modules" / ".bin" / "openapi-typescript"
    if not generator.exists():
        raise SystemExit(f"{generator} is missing: run `npm ci --prefix web` (make web-deps)")
    # Fields with a default are optional in a request body, so defaults do not make them required.
    subprocess.run([str(generator), str(document), "--default-non-nullable=false", "--output", str(target)],
                   cwd=WEB, check=True, capture_output=True)


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {_shown(TARGET)}\n")
    render_types(TARGET, TYPES)
    sys.stdout.write(f"wrote {_shown(TYPES)}\n")
