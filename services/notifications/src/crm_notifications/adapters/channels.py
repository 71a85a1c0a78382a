"""The external channels: SMTP email, signed webhooks, and the WeCom, DingTalk and Feishu chat
robots in their documented message formats. Each `send` returns normally or raises
`DeliveryError`; retries and the log are the worker's business."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

import aiosmtplib
import httpx

from crm_notifications.domain.model import Channel
from crm_notifications.domain.signing import SIGNATURE_HEADER, dingtalk_signed_url, feishu_sign, webhook_signature
from crm_notifications.settings import NotificationsSettings


class DeliveryError(Exception):
    """The channel refused or could not be reached; the message says why."""


@dataclass(frozen=True)
class Outgoing:
    """One message for one target. `payload` as queued (see tables.deliveries)."""

    delivery_id: str
    channel: Channel
    target: str
    payload: dict[str, Any]
    secret: str = ""


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


class Channels:
    def __init__(self, settings: NotificationsSettings, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._http = http or httpx.AsyncClient(timeout=settings.http_timeout_seconds, follow_redirects=False)

    @property
    def email_enabled(self) -> bool:
        return bool(self._settings.smtp_host)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, out: Outgoing) -> None:
        match out.channel:
            case Channel.EMAIL:
                await self._email(out)
            case Channel.WEBHOOK:
                await self._webhook(out)
            case Channel.WECOM:
                await self._robot(out.target, self.wecom_message(out.payload), "errcode")
            case Channel.DINGTALK:
                url = dingtalk_signed_url(out.target, out.secret, int(time.time() * 1000)) if out.secret else out.target
                await self._robot(url, self.dingtalk_message(out.payload), "errcode")
            case Channel.FEISHU:
                await self._robot(out.target, self.feishu_message(out.payload, out.secret, int(time.time())), "code")
            case _:
                raise DeliveryError(f"no sender for channel {out.channel}")

    # ----------------------------------------------------------------------------- email

    async def _email(self, out: Outgoing) -> None:
        s = self._settings
        if not s.smtp_host:
            raise DeliveryError("email is not configured (CRM_SMTP_HOST)")
        msg = EmailMessage()
        msg["From"] = s.smtp_from
        msg["To"] = formataddr((out.payload.get("name", ""), out.target))
        msg["Subject"] = out.payload["title"]
        msg["Message-ID"] = make_msgid(idstring=out.delivery_id, domain="crm.notifications")
        msg["X-CRM-Delivery"] = out.delivery_id
        msg.set_content(out.payload["body"] + (f"\n\n{s.public_base_url}{out.payload['link']}"
                                               if out.payload.get("link") else ""))
        msg.add_alternative(out.payload["html"], subtype="html")
        try:
            await aiosmtplib.send(
                msg, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_security == "tls", start_tls=True if s.smtp_security == "starttls" else False,
                timeout=s.smtp_timeout_seconds)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {exc}") from exc

    # --------------------------------------------------------------------------- webhook

    async def _webhook(self, out: Outgoing) -> None:
        body = webhook_body(out.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "crm-notifications/1",
            SIGNATURE_HEADER: webhook_signature(out.secret, int(time.time()), body),
            "X-CRM-Delivery": out.delivery_id,
            "X-CRM-Event-Type": str(out.payload.get("type", "")),
        }
        try:
            response = await self._http.post(out.target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code}: {response.text[:300]}")

    # ---------------------------------------------------------------------------- robots

    def _link(self, payload: dict[str, Any]) -> str:
        return f"{self._settings.public_base_url}{payload['link']}" if payload.get("link") else ""

    def wecom_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        """WeCom group robot, markdown message."""
        link = self._link(payload)
        content = f"**{payload['title']}**\n{payload['body']}" + (f"\n[{link}]({link})" if link else "")
        return {"msgtype": "markdown", "markdown": {"content": content}}

    def dingtalk_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        """DingTalk custom robot, markdown message (title shows in the conversation list)."""
        link = self._link(payload)
        text = f"#### {payload['title']}\n\n{payload['body']}" + (f"\n\n[{link}]({link})" if link else "")
        return {"msgtype": "markdown", "markdown": {"title": payload["title"], "text": text}}

    def feishu_message(self, payload: dict[str, Any], secret: str, timestamp: int) -> dict[str, Any]:
        """Feishu custom bot, text message; signed in the body when the bot has a secret."""
        link = self._link(payload)
        text = f"{payload['title']}\n{payload['body']}" + (f"\n{link}" if link else "")
        message: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if secret:
            message |= {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp)}
        return message

    async def _robot(self, url: str, message: dict[str, Any], code_field: str) -> None:
        try:
            response = await self._http.post(url, json=message)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code}: {response.text[:300]}")
        # The platforms answer 200 with an error code in the body (bad signature, rate limit).
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(f"not a JSON answer: {response.text[:300]}") from None
        code = answer.get(code_field, answer.get("StatusCode", 0)) if isinstance(answer, dict) else 0
        if code not in (0, None):
            raise DeliveryError(f"robot refused: {json.dumps(answer, ensure_ascii=False)[:300]}")
