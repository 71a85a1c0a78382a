"""`Idempotency-Key` on POST: the same key returns the first response and creates nothing new.

Keys live in a NATS JetStream key-value bucket shared by every gateway replica, scoped to the
caller, with a 24-hour TTL. The key is claimed atomically before the request runs, so two
concurrent retries cannot both create: the second gets 409 until the first finishes. Only
successful responses are kept; after a failure the key is released for a corrected retry.

The bucket alone cannot survive a gateway that dies after the service committed and before the
answer is kept here: the key (scoped the same way) and the body's hash are therefore forwarded
to the services as gRPC metadata, and each service records the key with the command's effects
and answers a retry with the response it kept (crmkit.idempotency).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from crmkit import idempotency
from crmkit.errors import Conflict, InvalidArgument

log = logging.getLogger(__name__)

BUCKET = "crm_gateway_idempotency"
_REPLAYED_HEADERS = ("content-type", "etag", "location")
# Tests only: the process exits right after the services answered and before the answer is kept
# here, the crash the services' own record of the key is for (e2e/test_idempotency_crash.py).
_CRASH_BEFORE_KEEPING = os.environ.get("CRM_TEST_CRASH_BEFORE_KEEPING_ANSWER") == "1"


async def open_store(js: JetStreamContext, ttl_seconds: int, replicas: int = 1) -> KeyValue:
    return await js.create_key_value(KeyValueConfig(
        bucket=BUCKET, history=1, ttl=float(ttl_seconds), storage=StorageType.FILE, replicas=replicas))


class IdempotencyStore:
    def __init__(self, kv: KeyValue, *, claim_seconds: float = 60.0) -> None:
        self._kv = kv
        # A claim older than this belongs to a gateway that died mid-request; a retry may take it over.
        self._claim_seconds = claim_seconds

    async def run(self, request: Request, subject: str, key: str,
                  handler: Callable[[Request], Awaitable[Response]]) -> Response:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidArgument.of("Idempotency-Key", "must be 1 to 255 printable characters")
        body = await request.body()
        fingerprint = hashlib.sha256(body).hexdigest()
        slot = hashlib.sha256(f"{subject}\n{request.method}\n{request.url.path}\n{key}".encode()).hexdigest()
        try:
            replay = await self._claim(slot, fingerprint)
        except (NatsError, TimeoutError) as exc:
            # The bucket is out of reach: the services still record the key with the command's
            # effects and answer a retry from there, so the request runs rather than fail (500).
            log.warning("idempotency bucket unavailable; the services dedupe alone", extra={"error": repr(exc)})
            with idempotency.forwarding(slot, fingerprint):
                return await handler(request)
        if replay is not None:
            return replay
        try:
            with idempotency.forwarding(slot, fingerprint):
                response = await handler(request)
        except BaseException:
            await self._release(slot)
            raise
        if _CRASH_BEFORE_KEEPING:
            os._exit(70)
        if 200 <= response.status_code < 300:
            try:
                await self._kv.put(slot, json.dumps({
                    "state": "done", "fingerprint": fingerprint, "status": response.status_code,
                    "headers": {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers},
                    "body": base64.b64encode(bytes(response.body)).decode(),
                }).encode())
            except (NatsError, TimeoutError) as exc:  # the service kept the answer: a retry gets it there
                log.warning("idempotency bucket unavailable; answer kept by the service only",
                            extra={"error": repr(exc)})
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
        if time.time() - float(record.get("since", 0)) > self._claim_seconds:
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
        except (NatsError, TimeoutError) as exc:  # the claim then expires after claim_seconds
            log.warning("idempotency bucket unavailable; claim left to expire", extra={"error": repr(exc)})
