"""The audit chain's head, recorded outside the database in a NATS JetStream key-value bucket:
someone who can rewrite the audit table cannot also move the anchor, so cutting entries from the
end of the trail, or rebuilding it from the start, no longer goes unnoticed."""

from __future__ import annotations

import json

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

BUCKET = "crm_audit_anchors"
_KEY = "head"


class JetStreamAnchors:
    def __init__(self, js: JetStreamContext, replicas: int = 1, bucket: str = BUCKET) -> None:
        self._js = js
        self._replicas = replicas
        self._bucket = bucket
        self._kv: KeyValue | None = None

    async def _store(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self._js.key_value(self._bucket)
            except BucketNotFoundError:
                # Keeps a history, so an anchor overwritten by someone with NATS access shows too.
                self._kv = await self._js.create_key_value(KeyValueConfig(
                    bucket=self._bucket, history=64, storage=StorageType.FILE, replicas=self._replicas))
        return self._kv

    async def latest(self) -> tuple[int, str] | None:
        try:
            entry = await (await self._store()).get(_KEY)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        head = json.loads(entry.value)
        return int(head["sequence"]), str(head["hash"])

    async def record(self, sequence: int, hash_: str) -> None:
        await (await self._store()).put(_KEY, json.dumps({"sequence": sequence, "hash": hash_}).encode())
