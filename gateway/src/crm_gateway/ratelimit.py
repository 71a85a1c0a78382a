"""Per-principal rate limits: a token bucket per user or partner client (R-SEC-05).

A bucket holds up to `limit` tokens (requests per minute) and refills at limit/60 per second, so
a caller may burst up to a minute's allowance and then goes at the steady rate. People get the
gateway's default; partner clients the `rate_limit` claim identity puts in their token.

The buckets live in this process: with N replicas behind a load balancer a caller gets at most N
times its limit. `take` never awaits, so on the event loop it is atomic: concurrent requests of
one caller cannot both spend the last token. Buckets are kept for the most recently seen
`max_tracked` callers; the one evicted is the least recently seen, whose bucket has refilled in
all likelihood.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the bucket is full again (RateLimit-Reset).
    reset_seconds: int
    # Seconds until one request is allowed again (Retry-After); 0 when allowed.
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_seconds),
                   "RateLimit-Policy": f"{self.limit};w=60"}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class _Bucket:
    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit)
        self.updated = now


class RateLimiter:
    def __init__(self, max_tracked: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_tracked = max_tracked
        self._clock = clock

    def take(self, key: str, limit: int) -> Decision:
        """Spends one token of `key`'s bucket, which holds `limit` requests per minute."""
        limit = max(1, limit)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit, now)
            while len(self._buckets) > self._max_tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            if bucket.limit != limit:  # the caller's limit changed: keep the spent share
                bucket.tokens = bucket.tokens * limit / bucket.limit
                bucket.limit = limit
        rate = limit / 60.0
        bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(True, limit, int(bucket.tokens), math.ceil((limit - bucket.tokens) / rate), 0)
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / rate))
        return Decision(False, limit, 0, math.ceil((limit - bucket.tokens) / rate), retry_after)
