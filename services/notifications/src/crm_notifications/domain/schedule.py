"""When a delivery is tried: retry backoff, quiet hours, the daily digest."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from crm_notifications.domain.model import Preferences


def backoff(attempt: int, base_seconds: float, cap_seconds: float) -> dt.timedelta:
    """Delay after the `attempt`-th failure (1-based): base, 2·base, 4·base … capped."""
    return dt.timedelta(seconds=min(base_seconds * 2 ** (attempt - 1), cap_seconds))


def quiet_until(now: dt.datetime, prefs: Preferences) -> dt.datetime | None:
    """The end of the quiet hours `now` falls in, or None outside them. Quiet hours may span
    midnight (22:00–07:00)."""
    start, end = prefs.quiet_start, prefs.quiet_end
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(prefs.time_zone)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:
        inside = t >= start or t < end
        end_day = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=zone).astimezone(dt.UTC)


def next_digest(now: dt.datetime, prefs: Preferences) -> dt.datetime:
    """The next time the daily digest goes out: digest_hour local time, today or tomorrow."""
    zone = ZoneInfo(prefs.time_zone)
    local = now.astimezone(zone)
    at = dt.datetime.combine(local.date(), dt.time(prefs.digest_hour), tzinfo=zone)
    if at <= local:
        at = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(prefs.digest_hour), tzinfo=zone)
    return at.astimezone(dt.UTC)


def first_attempt(now: dt.datetime, prefs: Preferences, *, digest: bool) -> dt.datetime:
    if digest:
        return next_digest(now, prefs)
    return quiet_until(now, prefs) or now
