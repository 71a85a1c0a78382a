"""Generates docs/events.md, the catalogue of every integration event, from proto/.

An event is a message carrying the `(crm.common.v1.event_subject)` option; its leading comment
in the .proto file is its description. `make proto` regenerates the page and a test fails when
it is stale.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from crm.common.v1 import options_pb2

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
TARGET = ROOT / "docs" / "events.md"
_MESSAGE_FIELD = 4  # FileDescriptorProto.message_type, for source-location paths

HEADER = """# Events catalogue

Generated from `proto/` by `make proto` (tools/events_catalogue.py); do not edit by hand.

Every event is published to NATS JetStream on its subject, in the stream of the service that owns
it (`CRM_<SERVICE>` holds `crm.<service>.>`), through that service's transactional outbox. Headers
carry CloudEvents attributes: `ce-id` (also `Nats-Msg-Id`, the deduplication key), `ce-type` (the
protobuf message name), `ce-source`, `ce-time`, `ce-subject` (the aggregate's id), `ce-actor` (who
caused it) and the W3C `traceparent` of the request that caused it. The payload is the protobuf
message, binary-encoded (`content-type: application/protobuf`).
"""


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        if protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{well_known}", "--include_source_info",
                        f"--descriptor_set_out={out}", *sources]) != 0:
            sys.exit("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def render() -> str:
    rows: list[tuple[str, str, str, str]] = []
    for file in _descriptor_set().file:
        comments = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}
        for index, message in enumerate(file.message_type):
            subject = message.options.Extensions[options_pb2.event_subject]
            if not subject:
                continue
            fields = ", ".join(f"`{f.name}`" for f in message.field)
            description = " ".join(comments.get((_MESSAGE_FIELD, index), "").split())
            rows.append((subject, f"{file.package}.{message.name}", fields, description))
    lines = [HEADER]
    for service in sorted({subject.split(".")[1] for subject, *_ in rows}):
        lines += [f"## {service}", "", f"Stream `CRM_{service.upper()}`.", "",
                  "| subject | message | payload fields | meaning |", "|---|---|---|---|"]
        lines += [f"| `{s}` | `{m}` | {f} | {d} |" for s, m, f, d in sorted(rows) if s.split(".")[1] == service]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
