"""The errors a use case may raise, one vocabulary for every service.

The gRPC layer turns them into status codes with rich details and the gateway turns those into
RFC 9457 problem+json, so a rule broken deep in a service reaches the client with a stable
`reason` and the fields at fault, never as a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# An error never echoes huge input back (a 10,000-character phone in a violation would also
# overflow gRPC's trailing metadata): texts are clipped, and at most MAX_VIOLATIONS are carried.
MAX_MESSAGE_CHARS = 1000
MAX_TEXT_CHARS = 200
MAX_VIOLATIONS = 20


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class CrmError(Exception):
    """Base class. `reason` is a stable UPPER_SNAKE identifier clients may branch on."""

    message: str
    reason: str = "ERROR"
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidArgument(CrmError):
    reason: str = "INVALID_ARGUMENT"
    violations: list[FieldViolation] = field(default_factory=list)

    @classmethod
    def of(cls, field_name: str, description: str) -> InvalidArgument:
        return cls(f"{field_name}: {description}", violations=[FieldViolation(field_name, description)])


@dataclass
class NotFound(CrmError):
    reason: str = "NOT_FOUND"


@dataclass
class AlreadyExists(CrmError):
    reason: str = "ALREADY_EXISTS"


@dataclass
class Conflict(CrmError):
    """A business rule forbids the change in the record's current state (HTTP 409)."""

    reason: str = "CONFLICT"


@dataclass
class StaleVersion(CrmError):
    """The caller's If-Match version is not the record's current one (HTTP 412)."""

    reason: str = "STALE_VERSION"


@dataclass
class PermissionDenied(CrmError):
    reason: str = "PERMISSION_DENIED"


@dataclass
class Unauthenticated(CrmError):
    reason: str = "UNAUTHENTICATED"


@dataclass
class Unavailable(CrmError):
    reason: str = "UNAVAILABLE"
