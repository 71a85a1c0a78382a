"""R-SEC-03: the audit trail's hash chain. Each entry's hash covers its own fields and the
previous entry's hash, so changing or removing an entry breaks the chain from that point on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainLink:
    """The hashed fields of one entry; `before`/`after` are JSON text as PostgreSQL renders jsonb."""

    sequence: int
    occurred_at: dt.datetime
    service: str
    entity: str
    entity_id: str
    action: str
    actor: str
    before: str | None
    after: str | None
    event_id: str
    prev_hash: str
    hash: str = ""


def canonical(link: ChainLink) -> bytes:
    doc = {
        "sequence": link.sequence,
        "occurred_at": link.occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "service": link.service, "entity": link.entity, "entity_id": link.entity_id,
        "action": link.action, "actor": link.actor, "before": link.before, "after": link.after,
        "event_id": link.event_id, "prev_hash": link.prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hash_of(link: ChainLink) -> str:
    return hashlib.sha256(canonical(link)).hexdigest()


@dataclass
class ChainCheck:
    """Fed the entries in sequence order, batch by batch; remembers only the last hash."""

    last_hash: str = GENESIS
    checked: int = 0
    first_broken: int = 0
    problem: str = ""
    # The newest (sequence, hash) recorded outside the database: the chain alone cannot show
    # entries cut from its end, or a chain rewritten from the genesis on.
    anchor: tuple[int, str] | None = None
    last_sequence: int = 0

    def feed(self, links: Iterable[ChainLink]) -> bool:
        """False once a broken entry is found (stop feeding)."""
        for link in links:
            self.checked += 1
            if link.prev_hash != self.last_hash:
                self._broken(link, "its link to the previous entry does not match (an entry was removed or "
                                   "altered before it)")
                return False
            if hash_of(link) != link.hash:
                self._broken(link, "its content does not match its hash (the entry was altered)")
                return False
            if self.anchor is not None and self.last_sequence < self.anchor[0] <= link.sequence:
                if link.sequence != self.anchor[0]:
                    self._broken(link, f"the anchored entry {self.anchor[0]} is missing before it")
                    return False
                if link.hash != self.anchor[1]:
                    self._broken(link, "its hash differs from the one anchored outside the database (the trail "
                                       "was rewritten)")
                    return False
            self.last_hash = link.hash
            self.last_sequence = link.sequence
        return True

    def finish(self) -> None:
        """After the last entry: the trail must reach at least as far as its anchor."""
        if self.intact and self.anchor is not None and self.anchor[0] > self.last_sequence:
            self.first_broken = self.anchor[0]
            self.problem = (f"entry {self.anchor[0]} was anchored but the trail ends at entry {self.last_sequence}: "
                            "entries were removed from its end")

    def _broken(self, link: ChainLink, why: str) -> None:
        self.first_broken = link.sequence
        self.problem = f"entry {link.sequence}: {why}"

    @property
    def intact(self) -> bool:
        return self.first_broken == 0
