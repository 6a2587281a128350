"""Leaf formats: the exact bytes that are chained, Merkle-hashed and exported.

    leaf = JCS-canonical JSON (RFC 8785) of
           {"v": <version>, "fact": <protected fact>, "derived": {...}}

* keys sorted, no insignificant white space, UTF-8, integers only (SPEC facts
  carry no floats); orjson's OPT_SORT_KEYS output is exactly that for these
  value types, on every platform and Python version.
* `derived` holds attributes rules need that do not reveal the person:
  `nik_possible` (bool) on `disbursement.ordered`.

Version 1 (frozen; still decoded): <protected fact> is the SPEC fact with every
personal field (`nik`, `kk`, `basis`, any field SPEC does not define) replaced
by its keyed token (see `store.vault`).

Version 2 (written since SPEC v2): as version 1, and also
* every `text` field is a token, like `basis`;
* in every other string (the fact `id`, `disbursement` and `complaint`
  references, `source.id`, `companion`, `agency`, ...) each maximal run of 16
  or more ASCII digits is replaced by its token (kind `digits`), the rest of
  the string kept: `ELG-BPNT-1275010101050001` → `ELG-BPNT-tk1_…`;
* the `id` of a `source` of kind `public` is a token as a whole (kind
  `source`), and any key of `source` besides `kind` and `id` is a token of its
  JSON (kind `extra`), like a top-level field SPEC does not define.
A leaf is at most `MAX_LEAF_BYTES` (a C2SP tlog-tiles entry bundle holds an
entry of at most 65,535 bytes); a fact whose leaf would be larger is refused.

The version number is the first key a reader checks; a new format gets a new
number and readers keep decoding the old ones.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

LEAF_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
#: The largest leaf a C2SP tlog-tiles entry bundle can carry (a 16-bit length prefix).
MAX_LEAF_BYTES = 65_535

#: A token as it appears inside a string (`tk1_` + 32 lowercase base32 characters).
TOKEN_IN_TEXT = re.compile(r"tk1_[a-z2-7]{32}")


class LeafFormatError(ValueError):
    pass


def encode_leaf(fact: dict[str, Any], derived: dict[str, Any]) -> bytes:
    return orjson.dumps({"v": LEAF_VERSION, "fact": fact, "derived": derived}, option=orjson.OPT_SORT_KEYS)


def decode_leaf(leaf: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        obj = orjson.loads(leaf)
    except orjson.JSONDecodeError as exc:
        raise LeafFormatError(f"leaf is not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") not in READABLE_VERSIONS:
        got = obj.get("v") if isinstance(obj, dict) else obj
        raise LeafFormatError(f"unknown leaf version: expected one of {sorted(READABLE_VERSIONS)}, got {got!r}")
    return obj["fact"], obj.get("derived", {})


def leaf_tokens(leaf: bytes) -> list[str]:
    """Every token a leaf holds, whole or inside a string (what an operator reading it must open)."""
    return TOKEN_IN_TEXT.findall(leaf.decode("utf-8", "replace"))


def leaf_matches_fact(leaf: bytes, fact: dict[str, Any]) -> bool:
    """Does an export entry's `fact` say what its leaf bytes say?

    Equal field by field, except that where the leaf holds a token the entry
    may show the clear value instead (an operator export): a whole-token value
    may stand for anything, a token inside a string for a run of 16 or more
    digits. Whether that clear value is the right one only the holder of the
    pseudonym key can tell.
    """
    if not isinstance(fact, dict):
        return False
    try:
        protected, _derived = decode_leaf(leaf)
    except LeafFormatError:
        return False
    return _matches(protected, fact)


def _matches(protected: Any, shown: Any) -> bool:
    if isinstance(protected, str) and protected.startswith("tk1_") and TOKEN_IN_TEXT.fullmatch(protected):
        return True
    if isinstance(protected, dict):
        return isinstance(shown, dict) and set(protected) == set(shown) and all(
            _matches(value, shown[name]) for name, value in protected.items())
    if isinstance(protected, list):
        return isinstance(shown, list) and len(protected) == len(shown) and all(map(_matches, protected, shown))
    if isinstance(protected, str) and "tk1_" in protected and isinstance(shown, str):
        parts = TOKEN_IN_TEXT.split(protected)
        tokens = TOKEN_IN_TEXT.findall(protected)
        pattern = re.escape(parts[0]) + "".join(
            f"(?:{re.escape(token)}|[0-9]{{16,}})" + re.escape(part) for token, part in zip(tokens, parts[1:]))
        return re.fullmatch(pattern, shown) is not None
    return protected == shown
