"""Entity ids are UUIDv7: time-ordered, so primary-key indexes stay compact."""

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def parse_id(value: str, field: str = "id") -> uuid.UUID:
    from crmkit.errors import InvalidArgument

    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument.of(field, f"{value!r} is not a valid id") from None
