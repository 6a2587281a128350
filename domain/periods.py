"""Period and month parsing (SPEC §1).

A ``period`` is one of:

* ``YYYY-Tn``          PKH stage n (1..4), covering months 3n-2..3n
* ``YYYY-MM``          one month
* ``YYYY-MM/YYYY-MM``  inclusive month range, start <= end

A ``month`` is ``YYYY-MM``. Regexes are strict: exactly four year digits,
exactly two month digits, no surrounding whitespace.
"""

from __future__ import annotations

import functools

import re
from dataclasses import dataclass

__all__ = ["Period", "parse_period", "parse_month", "month_key", "format_month"]

_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
_STAGE_RE = re.compile(r"([0-9]{4})-T([1-4])")
_RANGE_RE = re.compile(r"([0-9]{4}-[0-9]{2})/([0-9]{4}-[0-9]{2})")


@dataclass(frozen=True, slots=True)
class Period:
    """A parsed period: its original text and every (year, month) covered, in order."""

    text: str
    months: tuple[tuple[int, int], ...]

    @property
    def first(self) -> tuple[int, int]:
        return self.months[0]

    @property
    def last(self) -> tuple[int, int]:
        return self.months[-1]


def parse_month(text: str) -> tuple[int, int]:
    """Parse ``YYYY-MM`` into ``(year, month)``; ``ValueError`` if malformed."""
    if not isinstance(text, str):
        raise ValueError(f"month must be a string 'YYYY-MM', got {type(text).__name__}")
    return _parse_month(text)


# Months and periods repeat across millions of facts, and both parses are
# pure with immutable results: remembered (failures are not, they raise).
@functools.lru_cache(maxsize=4096)
def _parse_month(text: str) -> tuple[int, int]:
    m = _MONTH_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid month {text!r}: expected 'YYYY-MM'")
    year, month = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12:
        raise ValueError(f"invalid month {text!r}: month must be 01..12")
    return (year, month)


def month_key(ym: tuple[int, int]) -> int:
    """A totally ordered integer for (year, month): year*12 + (month-1)."""
    return ym[0] * 12 + ym[1] - 1


def format_month(ym: tuple[int, int]) -> str:
    return f"{ym[0]:04d}-{ym[1]:02d}"


def _months_between(start: tuple[int, int], end: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    a, b = month_key(start), month_key(end)
    return tuple((k // 12, k % 12 + 1) for k in range(a, b + 1))


def parse_period(text: str) -> Period:
    """Parse a SPEC §1 period string; ``ValueError`` with a clear message if invalid."""
    if not isinstance(text, str):
        raise ValueError(f"period must be a string, got {type(text).__name__}")
    return _parse_period(text)


@functools.lru_cache(maxsize=4096)
def _parse_period(text: str) -> Period:
    m = _STAGE_RE.fullmatch(text)
    if m is not None:
        year, n = int(m.group(1)), int(m.group(2))
        return Period(text, tuple((year, mo) for mo in range(3 * n - 2, 3 * n + 1)))
    m = _RANGE_RE.fullmatch(text)
    if m is not None:
        try:
            start = parse_month(m.group(1))
            end = parse_month(m.group(2))
        except ValueError as exc:
            raise ValueError(f"invalid period {text!r}: {exc}") from None
        if month_key(start) > month_key(end):
            raise ValueError(f"invalid period {text!r}: range start is after its end")
        return Period(text, _months_between(start, end))
    if _MONTH_RE.fullmatch(text) is not None:
        try:
            ym = parse_month(text)
        except ValueError as exc:
            raise ValueError(f"invalid period {text!r}: {exc}") from None
        return Period(text, (ym,))
    raise ValueError(
        f"invalid period {text!r}: expected 'YYYY-Tn' (n=1..4), 'YYYY-MM' or 'YYYY-MM/YYYY-MM'"
    )
