"""The simulator's state on disk: one JSON snapshot, replaced atomically after every change.

A real S/4HANA never hands out a document number twice, and the CRM relies on that; so a simulator
that is restarted on the same data (the day after `make dev`) must continue its number ranges and
keep its documents. A snapshot file is enough for a test double whose whole state is a few
thousand rows held in memory and changed in place under one lock: the request that changed it
writes the new state before it answers (temp file, fsync, rename, fsync of the directory), so
an answered write survives a crash, and a `$batch` changeset is on disk whole or not at all.
Each change writes everything: about 15 ms per thousand rows, nothing at the size of a day's
development; `make reset` starts over when it has grown large.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

FORMAT = 1


def _encode(value: Any) -> Any:
    # datetime before date: a datetime is a date too
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$microseconds": value // dt.timedelta(microseconds=1)}
    raise TypeError(f"cannot store {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        [(tag, raw)] = obj.items()
        if tag == "$decimal":
            return Decimal(raw)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(raw)
        if tag == "$date":
            return dt.date.fromisoformat(raw)
        if tag == "$microseconds":
            return dt.timedelta(microseconds=raw)
    return obj


def save(path: Path, state: dict[str, Any]) -> None:
    """Replaces the snapshot at `path` with `state`, atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps({"format": FORMAT, **state}, default=_encode, separators=(",", ":"))
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def load(path: Path) -> dict[str, Any] | None:
    """The snapshot at `path`, or None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    state = json.loads(text, object_hook=_decode)
    if state.pop("format", None) != FORMAT:
        raise ValueError(f"{path}: not a simulator state file of format {FORMAT}")
    return state
