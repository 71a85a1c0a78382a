"""The notification vocabulary: channels, delivery states, rules, preferences."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmkit.auth import Principal
from crmkit.errors import FieldViolation, InvalidArgument


class Channel(StrEnum):
    INBOX = "inbox"
    EMAIL = "email"
    WEBHOOK = "webhook"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    FEISHU = "feishu"


# Channels a person chooses between per kind; webhooks and robots are configured by admins.
PERSONAL_CHANNELS = (Channel.INBOX, Channel.EMAIL)
DEFAULT_CHANNELS: tuple[Channel, ...] = (Channel.INBOX, Channel.EMAIL)
ROBOT_CHANNELS = (Channel.WECOM, Channel.DINGTALK, Channel.FEISHU)
LOCALES = ("zh-CN", "en")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    PARKED = "parked"


@dataclass(frozen=True)
class Person:
    """A recipient as identity knows them, with what they may read (None: unknown, so nothing)."""

    id: str
    display_name: str
    email: str
    locale: str
    access: Principal | None = None


@dataclass(frozen=True)
class Robot:
    kind: Channel
    url: str
    secret: str = ""
    locale: str = "zh-CN"


@dataclass(frozen=True)
class Rule:
    id: uuid.UUID
    name: str
    event_subject: str
    kind: str
    recipients: tuple[str, ...]
    robots: tuple[Robot, ...] = ()
    enabled: bool = True
    version: int = 1
    updated_at: dt.datetime | None = None
    updated_by: str = ""
    # What who saved the rule may read: all its robots may carry (None: unknown, so nothing).
    owner: Principal | None = None


@dataclass(frozen=True)
class Preferences:
    user_id: str
    channels: dict[str, tuple[Channel, ...]] = field(default_factory=dict)
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None
    time_zone: str = "Asia/Shanghai"
    daily_digest: bool = False
    digest_hour: int = 8
    # The defaults are version 1, so an If-Match on them is a real precondition (0 means none).
    version: int = 1

    def channels_for(self, kind: str) -> tuple[Channel, ...]:
        return self.channels.get(kind, DEFAULT_CHANNELS)


# ------------------------------------------------------------------------------ validation

SUBJECT = re.compile(r"^crm\.[a-z_]+\.[a-z_]+\.[a-z_]+$")
WEBHOOK_TYPE = re.compile(r"^crm(\.[a-z_]+){0,3}(\.>)?$|^crm\.>$")
KIND = re.compile(r"^[a-z][a-z_]*(\.[a-z_]+)*$")
RECIPIENT = re.compile(r"^(field|manager_of):[a-z_]+$|^role:[a-z][a-z0-9_]*$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def check_rule(name: str, event_subject: str, kind: str, recipients: list[str], robots: list[Robot]) -> None:
    errors: list[FieldViolation] = []
    if not name.strip() or len(name) > 200:
        errors.append(FieldViolation("rule.name", "is required, at most 200 characters"))
    if not SUBJECT.match(event_subject):
        errors.append(FieldViolation("rule.event_subject", "must be an event subject such as "
                                     "crm.contracts.approval.step_assigned"))
    if not KIND.match(kind) or len(kind) > 60:
        errors.append(FieldViolation("rule.kind", "must be a dotted lower-case name such as approval.waiting"))
    if not recipients and not robots:
        errors.append(FieldViolation("rule.recipients", "name at least one recipient or robot"))
    for i, spec in enumerate(recipients):
        if not RECIPIENT.match(spec):
            errors.append(FieldViolation(f"rule.recipients[{i}]",
                                         "must be field:<event field>, manager_of:<event field> or role:<role>"))
    for i, robot in enumerate(robots):
        errors.extend(check_robot(robot, f"rule.robots[{i}]"))
    if errors:
        raise InvalidArgument("the rule is not valid", violations=errors)


def check_robot(robot: Robot, where: str) -> list[FieldViolation]:
    errors = []
    if robot.kind not in ROBOT_CHANNELS:
        errors.append(FieldViolation(f"{where}.kind", "must be wecom, dingtalk or feishu"))
    if not robot.url.startswith(("https://", "http://")) or len(robot.url) > 2000:
        errors.append(FieldViolation(f"{where}.url", "must be an http(s) URL"))
    if robot.locale not in LOCALES:
        errors.append(FieldViolation(f"{where}.locale", "must be zh-CN or en"))
    return errors


def check_webhook(url: str, event_types: list[str]) -> None:
    errors = []
    if not url.startswith(("https://", "http://")) or len(url) > 2000:
        errors.append(FieldViolation("webhook.url", "must be an http(s) URL"))
    if not event_types:
        errors.append(FieldViolation("webhook.event_types", "name at least one event type"))
    for i, t in enumerate(event_types):
        if not WEBHOOK_TYPE.match(t):
            errors.append(FieldViolation(f"webhook.event_types[{i}]",
                                         'must be an event subject, or a prefix ending in ".>" such as crm.billing.>'))
    if errors:
        raise InvalidArgument("the webhook is not valid", violations=errors)


def webhook_matches(event_types: list[str] | tuple[str, ...], subject: str) -> bool:
    for t in event_types:
        if t.endswith(".>"):
            if subject.startswith(t[:-1]):
                return True
        elif t == subject:
            return True
    return False


def parse_time(value: str, field_name: str) -> dt.time | None:
    if not value:
        return None
    if not HHMM.match(value):
        raise InvalidArgument.of(field_name, 'must be "HH:MM" (24-hour)')
    return dt.time.fromisoformat(value)


def check_preferences(channels: dict[str, list[str]], quiet_start: str, quiet_end: str, time_zone: str,
                      digest_hour: int) -> Preferences:
    errors: list[FieldViolation] = []
    parsed: dict[str, tuple[Channel, ...]] = {}
    for kind, names in channels.items():
        if not KIND.match(kind):
            errors.append(FieldViolation("preferences.channels.kind", f"{kind!r} is not a notification kind"))
            continue
        bad = [n for n in names if n not in PERSONAL_CHANNELS]
        if bad:
            errors.append(FieldViolation(f"preferences.channels[{kind}]", "channels are inbox and email"))
            continue
        parsed[kind] = tuple(Channel(n) for n in dict.fromkeys(names))
    start = end = None
    try:
        start = parse_time(quiet_start, "preferences.quiet_start")
        end = parse_time(quiet_end, "preferences.quiet_end")
    except InvalidArgument as exc:
        errors.extend(exc.violations)
    if (start is None) != (end is None):
        errors.append(FieldViolation("preferences.quiet_end", "quiet hours need both a start and an end"))
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldViolation("preferences.time_zone", "must be an IANA time zone such as Asia/Shanghai"))
    if not 0 <= digest_hour <= 23:
        errors.append(FieldViolation("preferences.digest_hour", "must be 0..23"))
    if errors:
        raise InvalidArgument("the preferences are not valid", violations=errors)
    return Preferences(user_id="", channels=parsed, quiet_start=start, quiet_end=end, time_zone=time_zone,
                       digest_hour=digest_hour)


def user_ids_in(data: dict[str, Any], field_name: str) -> list[str]:
    """A rule's `field:<name>`: a user id, or a list of them, in the event."""
    value = data.get(field_name)
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []
