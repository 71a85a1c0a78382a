"""An OData V2 client for S/4HANA's A2X APIs, as SAP Gateway actually behaves.

- HTTP with httpx (async): the service's event loop never blocks on SAP. pyodata, SAP's own
  Python client, is synchronous (requests); we use its metadata model (`pyodata.v2.model`) to
  parse each service's `$metadata` and to check the entity sets and properties we use exist,
  and convert values ourselves, because the wire forms S/4HANA writes (`/Date(ms)/`,
  `/Date(ms+0000)/`, decimals as strings, `PT..H..M..S`) are where clients go wrong.
- CSRF: a write carries the token fetched with `x-csrf-token: Fetch` and the session cookies;
  a 403 with `x-csrf-token: Required` refetches the token and retries exactly once.
- ETags: a write to an entity with a concurrency token sends `If-Match`; 428 (none sent) and 412
  (stale) re-read the entity and retry once with the fresh ETag.
- `$batch`: one changeset (one LUW) in a multipart/mixed body; SAP answers 202 with one part per
  operation, or a single error part when the changeset rolled back.
- Errors: SAP's body `{"error": {"code", "message": {"value"}, "innererror": {"errordetails"}}}`
  becomes `SapError`; 4xx validation errors are permanent, 5xx / timeouts / connection errors
  transient.
- Paging: `$top`/`$skip` from the client, and SAP's own `__next` (`$skiptoken`) followed opaquely.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pyodata.v2.model as odata_model

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ROOT = "/sap/opu/odata/sap"
BUSINESS_PARTNER = "API_BUSINESS_PARTNER"
SALES_ORDER = "API_SALES_ORDER_SRV"
OUTBOUND_DELIVERY = "API_OUTBOUND_DELIVERY_SRV;v=0002"
BILLING_DOCUMENT = "API_BILLING_DOCUMENT_SRV"


# values on the wire ----------------------------------------------------------------------------
_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{4}))?\)/$")
_TIME = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.\d+)?S)?$")


def parse_datetime(value: str | None) -> dt.datetime | None:
    """`/Date(1552867200000)/` (Edm.DateTime, UTC) or `/Date(1552895997855+0000)/` (Edm.DateTimeOffset;
    the milliseconds are UTC, the offset only says where the writer was)."""
    if value is None or value == "":
        return None
    m = _DATE.match(value)
    if m is None:
        raise ValueError(f"not an OData V2 date: {value!r}")
    return EPOCH + dt.timedelta(milliseconds=int(m.group(1)))


def parse_date(value: str | None) -> dt.date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def parse_time(value: str | None) -> dt.timedelta | None:
    if not value:
        return None
    m = _TIME.match(value)
    if m is None:
        raise ValueError(f"not an Edm.Time: {value!r}")
    h, mi, s = (int(g or 0) for g in m.groups())
    return dt.timedelta(hours=h, minutes=mi, seconds=s)


def parse_decimal(value: str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(value)


def format_date(value: dt.date) -> str:
    """An Edm.DateTime date-only value for a payload."""
    midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return f"/Date({(midnight - EPOCH) // dt.timedelta(milliseconds=1)})/"


def datetimeoffset_literal(value: dt.datetime) -> str:
    """A `$filter` literal: datetimeoffset'2026-11-25T13:00:00.1234567Z'."""
    return "datetimeoffset'" + value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z'"


def datetime_literal(value: dt.date) -> str:
    return f"datetime'{value.isoformat()}T00:00:00'"


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def key_segment(*pairs: tuple[str, str]) -> str:
    if len(pairs) == 1:
        return f"('{quote(pairs[0][1], safe='')}')"
    return "(" + ",".join(f"{name}='{quote(value, safe='')}'" for name, value in pairs) + ")"


def alpha_out(number: str) -> str:
    """SAP's ALPHA conversion exit, external form: numeric document and partner numbers without
    leading zeros (the event queue and IDocs carry the internal 10-digit form, the APIs this)."""
    return number.lstrip("0") or "0" if number.isdigit() else number


@dataclass(frozen=True)
class Page:
    results: list[dict[str, Any]]
    count: int | None = None
    next_url: str | None = None


def parse_collection(payload: dict[str, Any]) -> Page:
    """The V2 JSON envelope of a collection: {"d": {"results": [...], "__count": "22", "__next": ...}}.
    (Some V1-style servers answer {"d": [...]}; accepted too.)"""
    d = payload["d"]
    if isinstance(d, list):
        return Page(d)
    count = d.get("__count")
    return Page(list(d.get("results", [])), int(count) if count is not None else None, d.get("__next"))


def parse_entity(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["d"]


def expanded(entity: dict[str, Any], nav: str) -> list[dict[str, Any]]:
    """The rows of an expanded to-many navigation; a deferred one is a programming error here."""
    value = entity.get(nav)
    if value is None:
        return []
    if "__deferred" in value:
        raise ValueError(f"{nav} was not expanded")
    return list(value.get("results", []))


# errors -------------------------------------------------------------------------------------------
@dataclass
class SapError(Exception):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    permanent: bool = False

    def __str__(self) -> str:
        detail = "; ".join(f"{d.get('code', '')} {d.get('message', '')}".strip() for d in self.details
                           if d.get("message") and d.get("message") != self.message)
        base = f"{self.status} {self.code}: {self.message}".strip()
        return f"{base} ({detail})" if detail else base


def error_from_response(status: int, body: bytes, content_type: str = "") -> SapError:
    code, message, details = "", "", []
    try:
        err = json.loads(body)["error"]
        code = str(err.get("code", ""))
        msg = err.get("message", "")
        message = msg.get("value", "") if isinstance(msg, dict) else str(msg)
        details = list((err.get("innererror") or {}).get("errordetails") or [])
    except (ValueError, KeyError, TypeError, AttributeError):
        message = body.decode("utf-8", "replace").strip()[:500] or httpx.codes.get_reason_phrase(status)
    # 4xx that a retry cannot fix is permanent: SAP refused the content (validation, unknown key).
    permanent = status in (400, 404, 405, 409, 422)
    return SapError(status, code, message, details, permanent)


class TransientError(SapError):
    pass


# metadata ------------------------------------------------------------------------------------------
def parse_metadata(xml: bytes) -> odata_model.Schema:
    """A service's `$metadata` as pyodata's model (annotations SAP ships that pyodata does not know
    are ignored, not fatal)."""
    config = odata_model.Config(default_error_policy=odata_model.PolicyIgnore())
    return odata_model.MetadataBuilder(xml, config=config).build()


def missing_properties(schema: odata_model.Schema, used: dict[str, list[str]]) -> list[str]:
    """Which `entity set.property` (or navigation) of `used` the metadata does not declare."""
    missing = []
    for set_name, props in used.items():
        try:
            entity_type = schema.entity_set(set_name).entity_type
        except KeyError:
            missing.append(set_name)
            continue
        names = {p.name for p in entity_type.proprties()} | {n.name for n in entity_type.nav_proprties}
        missing += [f"{set_name}.{p}" for p in props if p not in names]
    return missing


# the client ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchOp:
    method: str
    path: str  # relative to the service root, e.g. "A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')"
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchReply:
    status: int
    headers: dict[str, str]
    body: bytes


class ODataClient:
    def __init__(self, base_url: str, user: str, password: str, *, sap_client: str = "", timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._sap_client = sap_client
        self._http = httpx.AsyncClient(auth=(user, password), timeout=timeout, transport=transport,
                                       headers={"Accept": "application/json"})
        self._tokens: dict[str, str] = {}
        self.csrf_fetches = 0
        self.csrf_retries = 0
        self.etag_retries = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    def url(self, service: str, path: str = "") -> str:
        return f"{self._base}{ROOT}/{service}/{path}"

    def _params(self, params: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(params or {})
        if self._sap_client:
            out["sap-client"] = self._sap_client
        return out

    async def _send(self, method: str, url: str, *, params: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None, content: bytes | None = None) -> httpx.Response:
        try:
            return await self._http.request(method, url, params=params, headers=headers, content=content)
        except httpx.HTTPError as exc:
            raise TransientError(0, "HTTP", f"SAP not reachable: {exc.__class__.__name__}: {exc}") from exc

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            err = error_from_response(response.status_code, response.content, response.headers.get("content-type", ""))
            if not err.permanent:
                raise TransientError(err.status, err.code, err.message, err.details, False)
            raise err
        return response

    # reads
    async def metadata(self, service: str) -> odata_model.Schema:
        response = self._check(await self._send("GET", self.url(service, "$metadata"), params=self._params(),
                                                headers={"Accept": "application/xml"}))
        return parse_metadata(response.content)

    async def get_json(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._check(await self._send("GET", url, params=self._params(params) if params is not None
                                                else None))
        return response.json()

    async def read(self, service: str, path: str, params: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
        response = self._check(await self._send("GET", self.url(service, path), params=self._params(params)))
        entity = parse_entity(response.json())
        etag = response.headers.get("etag") or (entity.get("__metadata") or {}).get("etag", "")
        return entity, etag

    async def query(self, service: str, entity_set: str, *, filter: str = "", select: str = "", expand: str = "",
                    orderby: str = "", top: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every row matching, page by page: `$top`/`$skip` pages of our own, and inside each the
        server's `__next` pages (followed as given)."""
        skip = 0
        while True:
            params = {"$format": "json", "$top": str(top), "$skip": str(skip), "$inlinecount": "allpages"}
            for name, value in (("$filter", filter), ("$select", select), ("$expand", expand),
                                ("$orderby", orderby)):
                if value:
                    params[name] = value
            page = parse_collection(await self.get_json(self.url(service, entity_set), params))
            seen = len(page.results)
            for row in page.results:
                yield row
            next_url = page.next_url
            while next_url:
                nxt = parse_collection(await self.get_json(urljoin(self.url(service, entity_set), next_url)))
                seen += len(nxt.results)
                for row in nxt.results:
                    yield row
                next_url = nxt.next_url
            if seen < top or (page.count is not None and skip + seen >= page.count):
                return
            skip += seen

    # writes
    async def _token(self, service: str, *, refresh: bool = False) -> str:
        if refresh or service not in self._tokens:
            response = self._check(await self._send("GET", self.url(service), params=self._params(),
                                                    headers={"x-csrf-token": "Fetch"}))
            token = response.headers.get("x-csrf-token", "")
            if not token or token.lower() == "required":
                raise TransientError(response.status_code, "CSRF", "SAP returned no CSRF token")
            self._tokens[service] = token
            self.csrf_fetches += 1
        return self._tokens[service]

    async def _write(self, method: str, service: str, path: str, *, headers: dict[str, str] | None = None,
                     content: bytes | None = None, content_type: str = "application/json") -> httpx.Response:
        for attempt in (1, 2):
            token = await self._token(service, refresh=attempt == 2)
            response = await self._send(method, self.url(service, path), params=self._params(), content=content,
                                        headers={"x-csrf-token": token, "Content-Type": content_type,
                                                 **(headers or {})})
            if (response.status_code == 403 and response.headers.get("x-csrf-token", "").lower() == "required"
                    and attempt == 1):
                self.csrf_retries += 1
                continue
            return response
        raise AssertionError("unreachable")

    async def create(self, service: str, entity_set: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._check(await self._write("POST", service, entity_set, content=json.dumps(body).encode()))
        return parse_entity(response.json())

    async def update(self, service: str, path: str, body: dict[str, Any], *, etag: str | None = None) -> None:
        """PATCH with If-Match when the entity has a concurrency token (`etag`, or None when it has
        none). On 428/412 the entity is re-read and the update retried once with its fresh ETag."""
        content = json.dumps(body).encode()
        headers = {"If-Match": etag} if etag else {}
        response = await self._write("PATCH", service, path, headers=headers, content=content)
        if response.status_code in (412, 428):
            self.etag_retries += 1
            _, fresh = await self.read(service, path)
            response = await self._write("PATCH", service, path, headers={"If-Match": fresh} if fresh else {},
                                         content=content)
        self._check(response)

    async def batch(self, service: str, changeset: list[BatchOp]) -> list[BatchReply]:
        """One changeset: all operations succeed together or none does (SAP rolls the LUW back and
        answers with the single failing operation's error)."""
        outer, inner = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
        parts = []
        for n, op in enumerate(changeset, start=1):
            body = json.dumps(op.body).encode() if op.body is not None else b""
            head = [f"{op.method} {op.path} HTTP/1.1", "Content-Type: application/json", "Accept: application/json",
                    *(f"{k}: {v}" for k, v in op.headers.items()), f"Content-Length: {len(body)}"]
            parts.append((f"--{inner}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                          f"Content-ID: {n}\r\n\r\n" + "\r\n".join(head) + "\r\n\r\n").encode() + body + b"\r\n")
        changes = b"".join(parts) + f"--{inner}--\r\n".encode()
        payload = (f"--{outer}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode() + changes
                   + f"\r\n--{outer}--\r\n".encode())
        response = self._check(await self._write("POST", service, "$batch", content=payload,
                                                 content_type=f"multipart/mixed; boundary={outer}"))
        replies = parse_batch_response(response.headers.get("content-type", ""), response.content)
        for reply in replies:
            if reply.status >= 400:
                err = error_from_response(reply.status, reply.body)
                if not err.permanent:
                    raise TransientError(err.status, err.code, err.message, err.details, False)
                raise err
        return replies


def _boundary(content_type: str) -> str:
    for piece in content_type.split(";"):
        name, _, value = piece.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise ValueError(f"no boundary in {content_type!r}")


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    out = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        out.append((headers, content.removesuffix(b"\r\n")))
    return out


def parse_batch_response(content_type: str, body: bytes) -> list[BatchReply]:
    """Flattens a `$batch` response: each changeset's operations, or its one error, in order."""
    replies = []
    for headers, content in _parts(body, _boundary(content_type)):
        ctype = headers.get("content-type", "")
        if ctype.startswith("multipart/mixed"):
            replies += parse_batch_response(ctype, content)
            continue
        head, _, payload = content.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        part_headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                part_headers[name.strip().lower()] = value.strip()
        replies.append(BatchReply(status, part_headers, payload.rstrip(b"\r\n")))
    return replies
