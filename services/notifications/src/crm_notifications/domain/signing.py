"""Signatures: our outbound webhooks (Stripe-style), and the DingTalk and Feishu robots' own schemes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import urllib.parse

SIGNATURE_HEADER = "X-CRM-Signature"


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook_signature(secret: str, header: str, body: bytes, now: int, tolerance_seconds: int = 300) -> bool:
    """What a partner does on receipt (and what the docs show): recompute, compare in constant
    time, refuse stale timestamps (replays)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = webhook_signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """DingTalk custom robot "加签": sign = urlencode(base64(HMAC-SHA256(secret, "<ts>\\n<secret>")))."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={sign}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu custom bot: base64(HMAC-SHA256 keyed with "<ts>\\n<secret>" over an empty message)."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def mask_url(url: str) -> str:
    """Robot URLs carry their access token in the query: keep it out of logs and the API."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    masked = "&".join(f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, masked, ""))
