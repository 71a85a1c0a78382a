"""R-SEC-01: the org tree. Departments carry a materialised path of ids ("/<root>/<child>/") so a
subtree is a prefix; moves rewrite the prefix of every descendant; no cycles, in departments or
in the manager relation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from crmkit.errors import Conflict, InvalidArgument


def path_of(department_id: uuid.UUID, parent_path: str | None) -> str:
    return f"{parent_path or '/'}{department_id}/"


def ids_of_path(path: str) -> list[uuid.UUID]:
    """Root first."""
    return [uuid.UUID(part) for part in path.strip("/").split("/") if part]


def check_move(department_id: uuid.UUID, new_parent_id: uuid.UUID | None, new_parent_path: str | None) -> None:
    """A department may not become its own ancestor."""
    if new_parent_id == department_id:
        raise Conflict("a department cannot be its own parent", reason="DEPARTMENT_CYCLE")
    if new_parent_path and f"/{department_id}/" in new_parent_path:
        raise Conflict("a department cannot move under its own subtree", reason="DEPARTMENT_CYCLE")


def rebase(path: str, old_prefix: str, new_prefix: str) -> str:
    """The path of a descendant (or the department itself) after its subtree moved."""
    if not path.startswith(old_prefix):
        raise ValueError(f"{path} is not under {old_prefix}")
    return new_prefix + path[len(old_prefix):]


def check_manager(user_id: uuid.UUID, manager_id: uuid.UUID | None, chain_above_manager: Sequence[uuid.UUID]) -> None:
    """`chain_above_manager` is the new manager's own chain (nearest first). Setting it must not
    make the user their own (indirect) manager."""
    if manager_id is None:
        return
    if manager_id == user_id:
        raise Conflict("a user cannot be their own manager", reason="MANAGER_CYCLE")
    if user_id in chain_above_manager:
        raise Conflict("that manager reports (indirectly) to this user", reason="MANAGER_CYCLE")


def nearest_head(path: str, heads: Mapping[uuid.UUID, uuid.UUID]) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(department id, head user id) of the nearest department on `path`, itself first, that has a head."""
    for dept_id in reversed(ids_of_path(path)):
        if dept_id in heads:
            return dept_id, heads[dept_id]
    return None


def clean_name(value: str, field: str = "name", max_len: int = 200) -> str:
    name = " ".join(value.split())
    if not name:
        raise InvalidArgument.of(field, "is required")
    if len(name) > max_len:
        raise InvalidArgument.of(field, f"must be at most {max_len} characters")
    return name
