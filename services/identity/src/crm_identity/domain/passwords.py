"""Password policy and lockout arithmetic (pure; the hashing itself is argon2 in the app layer)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from crmkit.errors import InvalidArgument

MIN_LENGTH = 10
MAX_LENGTH = 256
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
# One text for every sign-in refusal: unknown login, wrong password, locked, disabled.
SIGN_IN_REFUSED = "invalid login or password"


def normalise_login(login: str) -> str:
    return login.strip().lower()


def check_login(login: str) -> str:
    login = normalise_login(login)
    if not LOGIN_PATTERN.match(login):
        raise InvalidArgument.of("login", "2-64 characters: lower-case letters, digits, . _ @ -")
    return login


def check_password(password: str, login: str, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidArgument.of(field, f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument.of(field, f"must be at most {MAX_LENGTH} characters")
    if login and login.lower() in password.lower():
        raise InvalidArgument.of(field, "must not contain the login")


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_for: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class LockState:
    failed_attempts: int = 0
    locked_until: dt.datetime | None = None

    def is_locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_failure(state: LockState, now: dt.datetime, policy: LockoutPolicy) -> LockState:
    """One more failure; the `max_failures`th locks for `lock_for` and starts the count afresh."""
    if state.is_locked(now):
        return state
    failures = state.failed_attempts + 1
    if failures >= policy.max_failures:
        return LockState(failed_attempts=0, locked_until=now + policy.lock_for)
    return LockState(failed_attempts=failures, locked_until=None)


def after_success() -> LockState:
    return LockState()
