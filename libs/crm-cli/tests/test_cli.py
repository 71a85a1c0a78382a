"""The `crm` command line against a fake gateway (httpx.MockTransport) that keeps uploads and
imports the way the real one does: offsets, Content-Range, statuses. The real gateway path is
covered by e2e/test_imports_cli.py."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx
import pytest

from crm_cli.main import CHUNK, run


class FakeGateway:
    def __init__(self, *, drop_every: int = 0, refuse: str = "") -> None:
        self.uploads: dict[str, dict] = {}
        self.imports: dict[str, dict] = {}
        self.puts = 0
        self.drop_every = drop_every   # every n-th PUT stores the chunk but the answer is lost
        self.refuse = refuse
        self.polls = 0
        self.seen_tokens: set[str] = set()
        self.started_with: dict = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen_tokens.add(request.headers.get("Authorization", ""))
        path, method = request.url.path, request.method
        if method == "POST" and path == "/api/v1/imports/uploads":
            body = json.loads(request.content)
            uid = f"u{len(self.uploads) + 1}"
            self.uploads[uid] = {"id": uid, "file_name": body["file_name"], "size": body["size"], "data": b""}
            return self._upload(uid, 201)
        if m := re.fullmatch(r"/api/v1/imports/uploads/(\w+)", path):
            uid = m[1]
            if method == "GET":
                return self._upload(uid)
            first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                                                       request.headers["Content-Range"]).groups())
            upload = self.uploads[uid]
            assert request.headers["Content-Type"] == "application/octet-stream"
            assert total == upload["size"] and last - first + 1 == len(request.content) <= CHUNK
            if first != len(upload["data"]):
                return httpx.Response(409, json={"reason": "UPLOAD_OFFSET_MISMATCH", "detail": "offset"})
            upload["data"] += request.content
            self.puts += 1
            if self.drop_every and self.puts % self.drop_every == 0:
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return self._upload(uid)
        if m := re.fullmatch(r"/api/v1/imports/uploads/(\w+)/import", path):
            upload = self.uploads[m[1]]
            assert len(upload["data"]) == upload["size"]
            self.started_with = json.loads(request.content)
            rows = upload["data"].decode().strip().count("\n")
            iid = f"i{len(self.imports) + 1}"
            self.imports[iid] = {"id": iid, "status": "validating", "total": 0, "processed": 0, "error": "",
                                 "rows": rows, "planned": {}, "done": {}, "data": upload["data"]}
            return httpx.Response(202, json=self._public(iid))
        if m := re.fullmatch(r"/api/v1/imports/(\w+)", path):
            self.polls += 1
            job = self.imports[m[1]]
            if job["status"] == "validating":
                if self.refuse:
                    job.update(status="refused", error=self.refuse)
                else:
                    job.update(status="dry_run", total=job["rows"],
                               planned={"created": job["rows"] - 1, "rejected": 1})
            elif job["status"] == "running":
                job["processed"] = min(job["total"], job["processed"] + job["total"] // 4 + 1)
                if job["processed"] == job["total"]:
                    job.update(status="done", done=job["planned"])
            return httpx.Response(200, json=self._public(m[1]))
        if m := re.fullmatch(r"/api/v1/imports/(\w+)/commit", path):
            self.imports[m[1]]["status"] = "running"
            return httpx.Response(202, json=self._public(m[1]))
        if m := re.fullmatch(r"/api/v1/imports/(\w+)/errors", path):
            return httpx.Response(200, content="name,line,outcome,reason\n坏行,3,rejected,bad\n".encode())
        return httpx.Response(404, json={"detail": "no route"})

    def _upload(self, uid: str, status: int = 200) -> httpx.Response:
        u = self.uploads[uid]
        return httpx.Response(status, json={"id": uid, "file_name": u["file_name"], "size": u["size"],
                                            "received": len(u["data"]), "complete": len(u["data"]) == u["size"]})

    def _public(self, iid: str) -> dict:
        return {k: v for k, v in self.imports[iid].items() if k not in ("rows", "data")}


def crm(gateway: FakeGateway, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    client = httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(gateway))
    code = run(["--token", "t0k", "--quiet", *argv], client=client, out=out, sleep=lambda _: None)
    return code, out.getvalue()


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, bytes]:
    lines = ["客户名称,统一社会信用代码"] + [f"公司{i:07d},{i:018d}" for i in range(130_000)]
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 3 * CHUNK
    path = tmp_path / "customers.csv"
    path.write_bytes(data)
    return path, data


def test_import_uploads_in_chunks_resumes_after_lost_answers_and_commits(big_file):
    path, data = big_file
    gateway = FakeGateway(drop_every=2)
    mapping = path.with_name("map.json")
    mapping.write_text(json.dumps({"客户名称": "name"}, ensure_ascii=False), encoding="utf-8")
    code, out = crm(gateway, "import", "customers", str(path), "--mapping", str(mapping), "--on-match", "update")
    assert code == 0, out
    [upload] = gateway.uploads.values()
    assert upload["data"] == data          # every byte once, in order, despite the lost answers
    assert gateway.started_with == {"dedup_key": "tax_id", "on_match": "update", "column_mapping": {"客户名称": "name"}}
    assert gateway.seen_tokens == {"Bearer t0k"}
    assert "would be 129999 created" in out and "done: 129999 created" in out
    assert path.with_name("customers.errors.csv").read_text(encoding="utf-8").splitlines()[1].startswith("坏行")


def test_dry_run_writes_nothing_and_a_refused_file_exits_1(big_file, tmp_path):
    path, _ = big_file
    gateway = FakeGateway()
    code, out = crm(gateway, "import", "customers", str(path), "--dry-run", "--errors-out", str(tmp_path / "e.csv"))
    assert code == 0 and "crm import commit i1" in out
    assert gateway.imports["i1"]["status"] == "dry_run" and (tmp_path / "e.csv").exists()
    code, out = crm(FakeGateway(refuse="file: is not a CSV or Excel (.xlsx) file"), "import", "customers", str(path))
    assert code == 1 and "refused: file: is not a CSV" in out


def test_usage_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    assert run(["import", "customers", "x.csv"]) == 2
    assert "no access token" in capsys.readouterr().err
    code, _ = crm(FakeGateway(), "import", "customers", str(tmp_path / "missing.csv"))
    assert code == 2 and "no such file" in capsys.readouterr().err
    bad = tmp_path / "map.json"
    bad.write_text("[1, 2]")
    (tmp_path / "f.csv").write_text("name\nx\n")
    code, _ = crm(FakeGateway(), "import", "customers", str(tmp_path / "f.csv"), "--mapping", str(bad))
    assert code == 2 and "JSON object" in capsys.readouterr().err
