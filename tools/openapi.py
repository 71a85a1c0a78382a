"""Writes the gateway's OpenAPI document to gateway/openapi.json (`make openapi`).

The document is checked in so API changes show up in review; a test fails when it drifts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crm_gateway.main import create_app
from crm_gateway.settings import GatewaySettings
from crmkit.auth.keys import generate_keypair, jwks_of

TARGET = Path(__file__).resolve().parents[1] / "gateway" / "openapi.json"


def render() -> str:
    # Keys only let the app be built; they do not appear in the document.
    key = generate_keypair()
    app = create_app(GatewaySettings(jwt_jwks=jwks_of(key.public_pem), principal_private_key=key.private_pem))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {TARGET.relative_to(Path.cwd()) if TARGET.is_relative_to(Path.cwd()) else TARGET}\n")
