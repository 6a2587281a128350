"""JSON output: orjson, with the standard library for what orjson refuses.

orjson writes integers only up to 64 bits; a balance is a sum of any number
of amounts and may pass that. Both write compact JSON with UTF-8 text as is,
so a line reads the same whichever wrote it."""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer past 64 bits (any other type fails in both)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
