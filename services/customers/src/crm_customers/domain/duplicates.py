"""Likely duplicate customers and how two of them merge (R-CUS-03). Pure: no I/O.

Finding candidates:
- Two live customers are likely duplicates when they have the same tax ID, or when their names,
  compared as `name_key` (lower case; whitespace, punctuation and legal-form words such as
  有限公司, 集团, Co., Ltd., Inc. removed), have a trigram similarity at or above the threshold.
- The database computes `name_key` and `trigram_text` in generated columns (migration 0004); the
  functions here are the same rules in Python, for tests and for explaining a match.
- A pair a user dismissed ("not duplicates") is left out of the report.

Merging `merged` into `surviving`:
- Nothing of either is lost: the merged customer's contacts, follow-ups and tags move to the
  survivor; the survivor's own field values stand, and each of its empty fields (tax ID, industry,
  region, addresses, bank accounts) takes the merged customer's value.
- The merged customer is soft-deleted with `merged_into` pointing at the survivor; the merge is
  recorded with both before-images, and a CustomersMerged event tells other services to repoint
  their references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from crm_customers.domain.model import Customer, canonical_tags
from crmkit.errors import InvalidArgument

DEFAULT_MIN_SIMILARITY = 0.5
MIN_SIMILARITY_FLOOR = 0.2   # lower than this the report is noise

# The SQL function crm_name_key (migration 0004), in Python.
_NAME_NOISE = re.compile(
    r"(?<![a-z0-9])(co\.?,?[ \t\n\x0b\x0c\r]*ltd|company|corporation|corp|limited|ltd|inc|gmbh)(?![a-z0-9])\.?"
    r"|股份有限公司|有限责任公司|有限公司|集团|公司|[ \t\n\x0b\x0c\r!-/:-@\[-`{-~、·《》“”‘’]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def name_key(name: str) -> str:
    """The name as duplicate detection compares it (PostgreSQL's lower() in the C locale folds
    only ASCII letters, and so does this)."""
    return _NAME_NOISE.sub("", name.translate(_ASCII_LOWER))


def trigram_text(key: str) -> str:
    """`key` spelt for pg_trgm: each non-ASCII character as three base-36 letters."""
    out = []
    for ch in key:
        code = ord(ch)
        out.append(ch if code < 128 else
                   _BASE36[code // 1296 % 36] + _BASE36[code // 36 % 36] + _BASE36[code % 36])
    return "".join(out)


def check_min_similarity(value: float) -> float:
    if value == 0:
        return DEFAULT_MIN_SIMILARITY
    if not MIN_SIMILARITY_FLOOR <= value <= 1:
        raise InvalidArgument.of("min_similarity", f"must be between {MIN_SIMILARITY_FLOOR} and 1")
    return value


@dataclass(frozen=True)
class MergePlan:
    """What the survivor becomes and which of its fields came from the merged customer."""

    survivor: Customer
    filled_fields: tuple[str, ...]


# Fields an empty survivor takes from the merged customer.
_FILLABLE = ("tax_id", "industry", "region", "addresses", "bank_accounts")


def plan_merge(surviving: Customer, merged: Customer) -> MergePlan:
    if surviving.id == merged.id:
        raise InvalidArgument.of("merged_id", "is the surviving customer itself")
    if surviving.tax_id and merged.tax_id and surviving.tax_id != merged.tax_id:
        raise InvalidArgument.of("merged_id", "has a different tax ID: these are two legal entities, not "
                                              "duplicates")
    filled: dict[str, object] = {}
    for name in _FILLABLE:
        if not getattr(surviving, name) and getattr(merged, name):
            filled[name] = getattr(merged, name)
    seen: set[str] = set()
    tags = canonical_tags(t for t in (*surviving.tags, *merged.tags)
                          if not (t.casefold() in seen or seen.add(t.casefold())))  # type: ignore[func-returns-value]
    if tags != surviving.tags:
        filled["tags"] = tags
    survivor = replace(surviving, **filled,
                       # A contract signed with either is a contract with the merged customer.
                       has_signed_contract=surviving.has_signed_contract or merged.has_signed_contract)
    return MergePlan(survivor, tuple(filled))
