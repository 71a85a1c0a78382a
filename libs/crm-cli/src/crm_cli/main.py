"""`crm`: the CRM from the command line, through the gateway's REST API.

    crm import customers FILE [--mapping MAP.json] [--dedup-key tax_id|name_region]
                              [--on-match skip|update|flag] [--dry-run] [--errors-out PATH]
    crm import status ID | crm import commit ID | crm import revert ID

`import customers` sends the file as a resumable upload (1 MiB chunks; a dropped connection is
retried from the offset the server says it has), starts the import, waits for the dry run and
prints its report, writes the rejected/skipped/flagged rows to an error file (the template's
columns plus line, outcome and reason: fix it and import it again), then, unless --dry-run,
commits and follows the commit with a progress bar. `import commit ID` commits a dry run later.

The gateway's address and an access token come from --api-url / --token or CRM_API_URL /
CRM_TOKEN. Exit status: 0 done, 1 the import failed or was refused, 2 a usage or API error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

CHUNK = 1024 * 1024        # the gateway's body limit
RETRIES = 5                # per chunk, after a network error or a 5xx
POLL_SECONDS = 0.5
DEFAULT_URL = "http://127.0.0.1:8000"   # `make dev`


class CliError(Exception):
    """A problem to print and exit 2 on."""


def problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    detail = body.get("detail") or body.get("title") or response.reason_phrase
    errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [])
    return f"HTTP {response.status_code} {body.get('reason', '')}: {detail}" + (f" ({errors})" if errors else "")


class Api:
    """The few gateway calls the CLI makes; `sleep` is injectable so tests do not wait."""

    def __init__(self, client: httpx.Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sleep = sleep

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway: {exc}") from None
        if response.status_code not in expect:
            raise CliError(problem_text(response))
        return response

    # Upload --------------------------------------------------------------------------------

    def upload(self, path: Path, *, progress: bool = True) -> str:
        size = path.stat().st_size
        if size == 0:
            raise CliError(f"{path} is empty")
        upload = self.call("POST", "/api/v1/imports/uploads", expect=(201,),
                           json={"file_name": path.name, "size": size}).json()
        upload_id = upload["id"]
        with path.open("rb") as f, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                        desc="upload", disable=not progress) as bar:
            offset = 0
            while offset < size:
                f.seek(offset)
                chunk = f.read(CHUNK)
                received = self._put_chunk(upload_id, offset, chunk, size)
                bar.update(received - offset)
                offset = received
        return upload_id

    def _put_chunk(self, upload_id: str, offset: int, chunk: bytes, size: int) -> int:
        """Sends one chunk; after a network error, a 5xx or an offset the server does not expect,
        asks the server what it has and returns that offset (the caller resumes from it)."""
        for attempt in range(RETRIES + 1):
            try:
                response = self.client.put(
                    f"/api/v1/imports/uploads/{upload_id}", content=chunk,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{size}"})
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                return int(response.json()["received"])
            if response is not None and response.status_code == 409 and \
                    response.json().get("reason") == "UPLOAD_OFFSET_MISMATCH":
                return self.received(upload_id)
            if response is not None and response.status_code < 500 and response.status_code != 429:
                raise CliError(problem_text(response))
            if attempt == RETRIES:
                break
            self.sleep(min(2 ** attempt * 0.5, 10))
            try:
                return self.received(upload_id)
            except CliError:
                continue
        raise CliError(f"upload {upload_id} stopped at byte {offset}: the gateway keeps failing")

    def received(self, upload_id: str) -> int:
        return int(self.call("GET", f"/api/v1/imports/uploads/{upload_id}").json()["received"])

    # Import --------------------------------------------------------------------------------

    def start(self, upload_id: str, *, dedup_key: str, on_match: str, mapping: dict[str, str]) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/imports/uploads/{upload_id}/import", expect=(202,), json={
            "dedup_key": dedup_key, "on_match": on_match, "column_mapping": mapping}).json()  # type: ignore[no-any-return]

    def get(self, import_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/imports/{import_id}").json()  # type: ignore[no-any-return]

    def wait(self, import_id: str, until: tuple[str, ...], *, progress: bool, desc: str) -> dict[str, Any]:
        """Polls the import until its status is one of `until`; the bar shows rows handled."""
        job = self.get(import_id)
        with tqdm(total=job["total"] or None, unit="row", desc=desc, disable=not progress) as bar:
            while job["status"] not in until:
                if job["status"] == "reverting" and job["error"]:
                    break  # a revert that stopped: it resumes when reverted again
                self.sleep(POLL_SECONDS)
                job = self.get(import_id)
                if job["total"] and bar.total != job["total"]:
                    bar.total = job["total"]
                bar.update(job["processed"] - bar.n)
                bar.set_postfix_str(job["status"])
            if job["status"] in ("done", "reverted") and job["total"]:
                bar.update(job["total"] - bar.n)
        return job

    def commit(self, import_id: str) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/imports/{import_id}/commit", expect=(202,)).json()  # type: ignore[no-any-return]

    def revert(self, import_id: str) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/imports/{import_id}/revert", expect=(202,)).json()  # type: ignore[no-any-return]

    def save_errors(self, import_id: str, target: Path) -> None:
        with self.client.stream("GET", f"/api/v1/imports/{import_id}/errors") as response:
            if response.status_code != 200:
                response.read()
                raise CliError(problem_text(response))
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("created", "updated", "skipped", "flagged", "rejected"))


def load_mapping(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the mapping file {path}: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise CliError('the mapping file must be a JSON object of "header": "field" strings')
    return mapping


def import_customers(api: Api, args: argparse.Namespace, out: Any = sys.stdout) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    mapping = load_mapping(args.mapping)
    progress = not args.quiet
    upload_id = api.upload(path, progress=progress)
    job = api.start(upload_id, dedup_key=args.dedup_key, on_match=args.on_match, mapping=mapping)
    print(f"import {job['id']}: checking {path.name}", file=out)
    job = api.wait(job["id"], ("dry_run", "refused"), progress=progress, desc="check")
    if job["status"] == "refused":
        print(f"refused: {job['error']}", file=out)
        return 1
    planned = job["planned"]
    print(f"dry run: {job['total']} rows; would be {_counts(planned)}", file=out)
    issues = planned.get("rejected", 0) + planned.get("skipped", 0) + planned.get("flagged", 0)
    if issues:
        target = Path(args.errors_out) if args.errors_out else path.with_name(f"{path.stem}.errors.csv")
        api.save_errors(job["id"], target)
        print(f"{issues} rows not created, with the reason of each: {target}", file=out)
    if args.dry_run:
        print(f"nothing written. To apply it: crm import commit {job['id']}", file=out)
        return 0
    return commit(api, job["id"], progress=progress, out=out)


def commit(api: Api, import_id: str, *, progress: bool, out: Any = sys.stdout) -> int:
    api.commit(import_id)
    job = api.wait(import_id, ("done", "failed"), progress=progress, desc="import")
    if job["status"] == "failed":
        print(f"import {import_id} stopped: {job['error']}. Run `crm import commit {import_id}` to resume.",
              file=out)
        return 1
    print(f"import {import_id} done: {_counts(job['done'])}. Undo it with `crm import revert {import_id}`.",
          file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="crm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--api-url", default=os.environ.get("CRM_API_URL", DEFAULT_URL),
                     help="the gateway (env CRM_API_URL)")
    top.add_argument("--token", default=os.environ.get("CRM_TOKEN", ""), help="access token (env CRM_TOKEN)")
    top.add_argument("--quiet", action="store_true", help="no progress bars")
    areas = top.add_subparsers(dest="area", required=True)
    imports = areas.add_parser("import", help="bulk import").add_subparsers(dest="action", required=True)
    customers = imports.add_parser("customers", help="import customers and contacts from a CSV or .xlsx file")
    customers.add_argument("file")
    customers.add_argument("--mapping", help='JSON file: {"header in the file": "field"}; "" ignores a column')
    customers.add_argument("--dedup-key", choices=("tax_id", "name_region"), default="tax_id",
                           help="how a row finds an existing customer (default tax_id)")
    customers.add_argument("--on-match", choices=("skip", "update", "flag"), default="skip",
                           help="what a row matching an existing customer does (default skip)")
    customers.add_argument("--dry-run", action="store_true", help="only check the file and report; write nothing")
    customers.add_argument("--errors-out", help="where to write the error file (default FILE.errors.csv)")
    for action, text in (("status", "an import's status"), ("commit", "apply a dry run (or resume an import)"),
                         ("revert", "undo a finished import")):
        imports.add_parser(action, help=text).add_argument("id")
    return top


def run(argv: list[str], client: httpx.Client | None = None, out: Any = sys.stdout,
        sleep: Callable[[float], None] = time.sleep) -> int:
    args = parser().parse_args(argv)
    if not args.token:
        print("crm: no access token: pass --token or set CRM_TOKEN", file=sys.stderr)
        return 2
    owned = client is None
    client = client or httpx.Client(base_url=args.api_url, timeout=httpx.Timeout(60.0, connect=10.0))
    client.headers["Authorization"] = f"Bearer {args.token}"
    api = Api(client, sleep)
    try:
        if args.action == "customers":
            return import_customers(api, args, out)
        if args.action == "status":
            job = api.get(args.id)
            print(json.dumps(job, ensure_ascii=False, indent=2), file=out)
            return 0
        if args.action == "commit":
            return commit(api, args.id, progress=not args.quiet, out=out)
        api.revert(args.id)
        job = api.wait(args.id, ("reverted",), progress=not args.quiet, desc="revert")
        if job["status"] != "reverted":
            print(f"revert of {args.id} stopped: {job['error']}. Run it again to resume.", file=out)
            return 1
        print(f"import {args.id} reverted", file=out)
        return 0
    except CliError as exc:
        print(f"crm: {exc}", file=sys.stderr)
        return 2
    finally:
        if owned:
            client.close()


def cli() -> None:
    raise SystemExit(run(sys.argv[1:]))
