"""Domain errors: one small hierarchy, each with a stable code.

Codes are part of the outside contract (they appear in rejection reports and
on the `jejak.rejects` topic), so they never change meaning once released.
"""

from __future__ import annotations

import re

from jejak.domain.nik import mask_nik


class DomainError(Exception):
    """Base of every error the domain raises."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


#: A run of exactly 16 digits: what a NIK or KK looks like, whichever field it was sent in.
_SIXTEEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{16}(?![0-9])")


def mask_sixteen_digit_runs(text: str) -> str:
    """Every standalone run of 16 digits masked like a NIK (`1275********0001`)."""
    return _SIXTEEN_DIGITS.sub(lambda m: mask_nik(m.group()), text)


class FactRejected(DomainError):
    """The input is not a valid SPEC fact; nothing was recorded.

    Rejection messages go to operators' terminals and logs: any 16-digit run
    in one is masked like a NIK (`1275********0001`), whichever field it was in."""

    code = "fact_rejected"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(mask_sixteen_digit_runs(message), field=field)


class InvalidJSON(FactRejected):
    code = "invalid_json"


class LineTooLong(FactRejected):
    """A line longer than the configured limit (`JEJAK_MAX_LINE_BYTES`); it is skipped unread."""

    code = "line_too_long"


class NotAnObject(FactRejected):
    code = "not_an_object"


class MissingField(FactRejected):
    code = "missing_field"


class WrongType(FactRejected):
    code = "wrong_type"


class BadFormat(FactRejected):
    code = "bad_format"


class UnknownType(FactRejected):
    code = "unknown_type"


class BadIdentifier(FactRejected):
    """A `nik` or `kk` that is not exactly 16 ASCII digits."""

    code = "bad_identifier"


class NonPositiveAmount(FactRejected):
    code = "non_positive_amount"


class AmountTooLarge(FactRejected):
    """An amount above :data:`jejak.domain.facts.MAX_AMOUNT` (what a 64-bit signed integer holds)."""

    code = "amount_too_large"


class LeafTooLarge(FactRejected):
    """A fact whose leaf would be larger than a log entry may be (65,535 bytes, SPEC §7)."""

    code = "leaf_too_large"


class Conflict(FactRejected):
    """The same fact id was recorded before with different content."""

    code = "conflict"


ALL_REJECTION_CODES = tuple(
    cls.code
    for cls in (
        InvalidJSON,
        LineTooLong,
        NotAnObject,
        MissingField,
        WrongType,
        BadFormat,
        UnknownType,
        BadIdentifier,
        NonPositiveAmount,
        AmountTooLarge,
        LeafTooLarge,
        Conflict,
    )
)
