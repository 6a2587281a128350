"""NIK plausibility (SPEC §4 ``invalid_nik``) and masking.

NIK: 16 digits ``PP KK CC DDMMYY SSSS`` — province, regency, district,
birth date (day + 40 for women), serial from 0001.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["PROVINCES", "nik_is_possible", "mask_nik", "holds_sixteen_digits"]

PROVINCES: frozenset[int] = frozenset(
    [*range(11, 20), 21, *range(31, 37), *range(51, 54), *range(61, 66),
     *range(71, 77), 81, 82, *range(91, 97)]
)
assert len(PROVINCES) == 38

# Days per month; February allows 29 because the century is unknown.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_16_digits(nik: object) -> bool:
    # isdigit() alone admits other scripts' digits; isascii() leaves 0-9
    return isinstance(nik, str) and len(nik) == 16 and nik.isascii() and nik.isdigit()


def nik_is_possible(nik: str) -> bool:
    """True iff ``nik`` is 16 ASCII digits forming a possible NIK (SPEC §4)."""
    return isinstance(nik, str) and _possible(nik)


@lru_cache(maxsize=1 << 16)  # ingest asks once per order, and a NIK has an order every period
def _possible(nik: str) -> bool:
    if not _is_16_digits(nik):
        return False
    if int(nik[0:2]) not in PROVINCES:
        return False
    if nik[2:4] == "00" or nik[4:6] == "00":
        return False
    day = int(nik[6:8])
    month = int(nik[8:10])
    if not (1 <= day <= 31 or 41 <= day <= 71):
        return False
    if not 1 <= month <= 12:
        return False
    if day > 40:
        day -= 40
    if day > _MONTH_DAYS[month - 1]:
        return False
    if nik[12:16] == "0000":
        return False
    return True


def mask_nik(nik: str) -> str:
    """``1275********0001``: first 4, eight stars, last 4."""
    s = str(nik)
    if len(s) <= 8:
        return "*" * 8
    return s[:4] + "*" * 8 + s[-4:]


#: How many digits in a row make a number that may be a NIK or KK.
NIK_LENGTH = 16


def holds_sixteen_digits(text: str) -> bool:
    """Whether free text holds 16 digits in a row, however they were typed.

    The one check for text that must never carry a NIK or KK in clear (an
    API `reason`, an erasure order reference). The text is read as Unicode
    NFKC (fullwidth, superscript and circled digits become ASCII ones); then
    its digits, in any script, are read in order, and whatever is not a letter
    between two of them (spaces, punctuation, symbols, dashes, format
    characters such as a zero-width space) is passed over. Only a letter ends
    a run."""
    run = 0
    for char in unicodedata.normalize("NFKC", text):
        if char.isdigit():
            run += 1
            if run >= NIK_LENGTH:
                return True
        elif char.isalpha():
            run = 0
    return False
