"""`Idempotency-Key` on POST: the same key returns the first response and creates nothing new.

Keys live in a NATS JetStream key-value bucket shared by every gateway replica, scoped to the
caller, with a 24-hour TTL. The key is claimed atomically before the request runs, so two
concurrent retries cannot both create: the second gets 409 until the first finishes. Only
successful responses are kept; after a failure the key is released for a corrected retry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from crmkit.errors import Conflict, InvalidArgument

BUCKET = "crm_gateway_idempotency"
# A claim older than this belongs to a gateway that died mid-request; a retry may take it over.
_STALE_CLAIM_SECONDS = 60.0
_REPLAYED_HEADERS = ("content-type", "etag", "location")


async def open_store(js: JetStreamContext, ttl_seconds: int, replicas: int = 1) -> KeyValue:
    return await js.create_key_value(KeyValueConfig(
        bucket=BUCKET, history=1, ttl=float(ttl_seconds), storage=StorageType.FILE, replicas=replicas))


class IdempotencyStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def run(self, request: Request, subject: str, key: str,
                  handler: Callable[[Request], Awaitable[Response]]) -> Response:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidArgument.of("Idempotency-Key", "must be 1 to 255 printable characters")
        body = await request.body()
        fingerprint = hashlib.sha256(body).hexdigest()
        slot = hashlib.sha256(f"{subject}\n{request.method}\n{request.url.path}\n{key}".encode()).hexdigest()
        replay = await self._claim(slot, fingerprint)
        if replay is not None:
            return replay
        try:
            response = await handler(request)
        except BaseException:
            await self._release(slot)
            raise
        if 200 <= response.status_code < 300:
            await self._kv.put(slot, json.dumps({
                "state": "done", "fingerprint": fingerprint, "status": response.status_code,
                "headers": {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers},
                "body": base64.b64encode(bytes(response.body)).decode(),
            }).encode())
        else:
            await self._release(slot)
        return response

    async def _claim(self, slot: str, fingerprint: str) -> Response | None:
        claim = json.dumps({"state": "pending", "fingerprint": fingerprint, "since": time.time()}).encode()
        try:
            await self._kv.create(slot, claim)
            return None
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self._kv.get(slot)
        except KeyNotFoundError:
            return await self._claim(slot, fingerprint)  # released between our two calls
        record = json.loads(entry.value or b"{}")
        if record.get("fingerprint") != fingerprint:
            raise InvalidArgument("this Idempotency-Key was used with a different request body; "
                                  "use a new key for a different request", reason="IDEMPOTENCY_KEY_REUSED")
        if record.get("state") == "done":
            response = Response(base64.b64decode(record["body"]), status_code=record["status"],
                                headers=record["headers"])
            response.headers["Idempotent-Replayed"] = "true"
            return response
        if time.time() - float(record.get("since", 0)) > _STALE_CLAIM_SECONDS:
            try:
                await self._kv.update(slot, claim, last=entry.revision)
                return None
            except KeyWrongLastSequenceError:
                pass
        raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly",
                       reason="IDEMPOTENCY_KEY_IN_USE")

    async def _release(self, slot: str) -> None:
        try:
            await self._kv.delete(slot)
        except KeyNotFoundError:
            pass
