"""Regenerates libs/crm-proto from proto/ (Python, gRPC stubs and .pyi type stubs).

`make proto` runs it; the test suite runs it into a temporary folder and fails if the checked-in
code differs, so generated code can never drift from the contracts.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUTPUT_DIR = ROOT / "libs" / "crm-proto" / "src"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"


def generate(out: Path) -> None:
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc", f"-I{PROTO_DIR}", f"-I{WELL_KNOWN}",
            f"--python_out={tmp}", f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}", f"--mypy_grpc_out={tmp}", *sources,
        ]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
        generated = Path(tmp) / "crm"
        for package in [generated, *(p for p in generated.rglob("*") if p.is_dir())]:
            (package / "__init__.py").touch()
        (generated / "py.typed").touch()
        target = out / "crm"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(generated, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
