"""Leaf format v1: the exact bytes that are chained, Merkle-hashed and exported.

    leaf = JCS-canonical JSON (RFC 8785) of
           {"v": 1, "fact": <protected fact>, "derived": {...}}

* keys sorted, no insignificant white space, UTF-8, integers only (SPEC facts
  carry no floats); orjson's OPT_SORT_KEYS output is exactly that for these
  value types, on every platform and Python version.
* <protected fact> is the SPEC fact object with every personal field
  (`nik`, `kk`, `basis`) replaced by its keyed token (see `store.vault`).
* `derived` holds attributes rules need that do not reveal the person:
  `nik_possible` (bool) on `disbursement.ordered`.

The version number is the first key a reader checks; a new format gets a new
number and readers keep decoding the old one.
"""

from __future__ import annotations

from typing import Any

import orjson

LEAF_VERSION = 1


class LeafFormatError(ValueError):
    pass


def encode_leaf(fact: dict[str, Any], derived: dict[str, Any]) -> bytes:
    return orjson.dumps({"v": LEAF_VERSION, "fact": fact, "derived": derived}, option=orjson.OPT_SORT_KEYS)


def decode_leaf(leaf: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        obj = orjson.loads(leaf)
    except orjson.JSONDecodeError as exc:
        raise LeafFormatError(f"leaf is not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != LEAF_VERSION:
        raise LeafFormatError(f"unknown leaf version: expected {LEAF_VERSION}, got {obj.get('v') if isinstance(obj, dict) else obj!r}")
    return obj["fact"], obj.get("derived", {})


def leaf_matches_fact(leaf: bytes, fact: dict[str, Any]) -> bool:
    """Does an export entry's `fact` say what its leaf bytes say?

    Equal field by field, except that where the leaf holds a token the entry
    may show the clear value instead (an operator export); whether that clear
    value is the right one only the holder of the pseudonym key can tell.
    """
    if not isinstance(fact, dict):
        return False
    try:
        protected, _derived = decode_leaf(leaf)
    except LeafFormatError:
        return False
    if set(protected) != set(fact):
        return False
    for name, value in protected.items():
        if isinstance(value, str) and value.startswith("tk1_"):
            continue
        if fact[name] != value:
            return False
    return True
