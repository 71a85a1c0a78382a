"""JSON shapes of the notifications API (R-NOT-01..03): the inbox, preferences, rules, webhooks
and the delivery log. Unknown fields are rejected."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes.common_schemas import Strict

PersonalChannel = Literal["inbox", "email"]
RobotKind = Literal["wecom", "dingtalk", "feishu"]
DeliveryChannel = Literal["email", "webhook", "wecom", "dingtalk", "feishu"]
DeliveryStatus = Literal["pending", "delivered", "parked"]
Locale = Literal["zh-CN", "en"]
KIND = r"^[a-z][a-z_]*(\.[a-z_]+)*$"


class InboxItem(Strict):
    id: str
    kind: str = Field(description='What it is about, e.g. "approval.waiting"')
    title: str
    body: str
    link: str = Field(description="A path in the API or web console it points to")
    sequence: int = Field(description="Increases per recipient; the event stream's event id")
    created_at: AwareDatetime
    read_at: AwareDatetime | None


class InboxPage(Strict):
    items: list[InboxItem]
    next_cursor: str | None


class UnreadCount(Strict):
    unread: int


class MarkedRead(Strict):
    marked: int


class Preferences(Strict):
    channels: dict[str, list[PersonalChannel]] = Field(
        default_factory=dict, description="Per notification kind; kinds not listed go to inbox and email",
        examples=[{"payment.overdue": ["inbox"], "approval.waiting": ["inbox", "email"]}])
    quiet_start: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                    description='Local "HH:MM"; email waits until quiet hours end')
    quiet_end: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    time_zone: str = Field("Asia/Shanghai", max_length=64, description="IANA time zone")
    daily_digest: bool = Field(False, description="One email a day instead of one per notification")
    digest_hour: int = Field(8, ge=0, le=23, description="Local hour the digest goes out")


class PreferencesRead(Preferences):
    version: int


class Robot(Strict):
    kind: RobotKind
    url: str = Field(max_length=2000, description="The robot's webhook URL (its token is masked on reads)")
    secret: str = Field("", max_length=200, description="DingTalk/Feishu signing secret; write-only. Empty on an "
                        "update keeps the secret of the same URL")
    locale: Locale = "zh-CN"


class RobotRead(Strict):
    kind: RobotKind
    url: str
    locale: Locale


class RuleFields(Strict):
    name: str = Field(max_length=200)
    event_subject: str = Field(max_length=200, examples=["crm.contracts.approval.step_assigned"])
    kind: str = Field(max_length=60, pattern=KIND, examples=["approval.waiting"])
    recipients: list[str] = Field(default_factory=list, max_length=20, description=(
        'Who: "field:<event field>" (user ids in the event), "manager_of:<event field>" (their managers), '
        '"role:<role>" (every holder)'), examples=[["field:owner_id", "manager_of:owner_id"]])
    robots: list[Robot] = Field(default_factory=list, max_length=10)
    enabled: bool = True


class Rule(Strict):
    id: str
    name: str
    event_subject: str
    kind: str
    recipients: list[str]
    robots: list[RobotRead]
    enabled: bool
    version: int
    updated_at: AwareDatetime | None
    updated_by: str


class RuleList(Strict):
    items: list[Rule]


class WebhookCreate(Strict):
    url: str = Field(max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=50, examples=[["crm.contracts.>",
                                                                          "crm.billing.invoice.issued"]],
                                   description='Event subjects, or a prefix ending in ".>"')
    description: str = Field("", max_length=500)


class Webhook(Strict):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    created_at: AwareDatetime
    created_by: str


class WebhookCreated(Webhook):
    secret: str = Field(description="The HMAC-SHA256 signing secret. Shown this once: store it now")


class WebhookList(Strict):
    items: list[Webhook]


class DeliveryAttempt(Strict):
    attempt: int
    attempted_at: AwareDatetime
    outcome: Literal["delivered", "failed"]
    error: str
    duration_ms: int


class Delivery(Strict):
    id: str
    event_id: str
    channel: DeliveryChannel
    recipient: str
    kind: str
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: AwareDatetime | None
    last_error: str
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None
    history: list[DeliveryAttempt]


class DeliveryPage(Strict):
    items: list[Delivery]
    next_cursor: str | None
