"""The SPEC fact types and their validation (SPEC §1, v2 §5 registers, §6 complaints).

`check_fact(obj)` accepts a decoded JSON value and either returns a `Fact`
or raises a `FactRejected` subclass whose message names the field and the fix.
Validation is exact: it rejects what SPEC says to reject and nothing else
(unknown extra fields are kept, as the source sent them).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Callable, NamedTuple

from jejak.domain.errors import (
    BadFormat,
    BadIdentifier,
    MissingField,
    NonPositiveAmount,
    AmountTooLarge,
    NotAnObject,
    UnknownType,
    WrongType,
)
from jejak.domain.nik import mask_nik
from jejak.domain.periods import parse_month, parse_period

FACT_ID_RE = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
DIGITS16_RE = re.compile(r"[0-9]{16}")
_FACT_ID = FACT_ID_RE.fullmatch
_DIGITS16 = DIGITS16_RE.fullmatch
REGION_RE = re.compile(r"[0-9]{10}")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

SOURCE_KINDS = frozenset(
    {"kemensos", "dinsos", "bank", "pos", "pendamping", "bkn", "dukcapil", "registry", "public"}
)
PROGRAMS = frozenset({"PKH", "BPNT"})
CHANNELS = frozenset({"BRI", "BNI", "MANDIRI", "BTN", "BSI", "POS"})
PKH_COMPONENTS = frozenset(
    {"ibu_hamil", "anak_usia_dini", "anak_sd", "anak_smp", "anak_sma", "disabilitas_berat", "lansia"}
)
DECISIONS = frozenset({"eligible", "revoked"})
SETTLEMENT_STATUSES = frozenset({"credited", "failed"})
PICKUP_BY = frozenset({"recipient", "family", "companion"})

#: SPEC v2 §5: the registers of `register.listed` and their kind. A *barred*
#: register's people must not receive aid; an *indicator* register's people
#: are probably not poor.
REGISTERS: dict[str, str] = {
    "asn": "barred",
    "tni_polri": "barred",
    "pendamping": "barred",
    "perangkat_desa": "barred",
    "guru_sertifikasi": "indicator",
    "pengurus_badan_usaha": "indicator",
    "upah_di_atas_ump": "indicator",
    "listrik_nonsubsidi": "indicator",
    "pemilik_mobil": "indicator",
}
REGISTER_CODES = frozenset(REGISTERS)
BARRED_REGISTERS = frozenset(r for r, kind in REGISTERS.items() if kind == "barred")
INDICATOR_REGISTERS = frozenset(r for r, kind in REGISTERS.items() if kind == "indicator")
#: SPEC v2 §6 complaint enums.
COMPLAINT_CHANNELS = frozenset({"slrt", "cekbansos", "lapor", "pendamping", "walk_in"})
COMPLAINT_CATEGORIES = frozenset(
    {"not_received", "wrong_amount", "pungli", "inclusion_error", "exclusion_error", "other"}
)
COMPLAINT_OUTCOMES = frozenset({"upheld", "partially_upheld", "rejected", "withdrawn", "referred"})

#: Fields that identify a person or family, or free text about them; never
#: stored or shown in clear outside the key vault (SPEC §1 "Personal data"; see
#: docs/privacy.md). Beyond these, any field SPEC does not define and any run of
#: 16 digits inside another string are personal data too (the leaf's rules).
PERSONAL_FIELDS = frozenset({"nik", "kk", "basis", "text"})

ENVELOPE_FIELDS = ("id", "type", "at", "source")

#: Every field SPEC defines for each type (the envelope included). Anything
#: else a source sends is kept, but treated as personal text (sealed).
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    t: frozenset(ENVELOPE_FIELDS) | frozenset(fields)
    for t, fields in {
        "rates.set": ("program", "year", "annual", "max_members", "monthly"),
        "eligibility.decided": ("kk", "nik", "program", "decision", "from", "region", "components", "basis"),
        "companion.assigned": ("companion", "kk", "program", "from"),
        "disbursement.ordered": ("kk", "nik", "program", "period", "amount", "channel"),
        "disbursement.settled": ("disbursement", "status", "amount", "channel"),
        "pickup.recorded": ("disbursement", "nik", "amount", "by", "companion"),
        "funds.returned": ("disbursement", "amount"),
        "asn.registered": ("nik", "agency", "from", "until"),
        "death.recorded": ("nik", "date"),
        "register.listed": ("register", "nik", "from", "until"),
        "complaint.filed": ("channel", "category", "region", "kk", "nik", "disbursement", "companion", "text"),
        "complaint.resolved": ("complaint", "outcome", "text"),
        # jejak's own fact: a person's personal data was destroyed by order.
        "jejak.erasure": ("subject", "order"),
        # jejak's own fact: an inspector looked at a person's or family's data.
        "jejak.access": ("actor", "role", "subject", "reason", "path"),
        # jejak's own fact: an API token was issued or revoked (never its secret).
        "jejak.token": ("action", "name", "role", "channel", "expires"),
    }.items()
}


class Fact(NamedTuple):
    """A validated SPEC fact: the envelope plus the type's fields, as sent.

    Immutable as a named tuple (a frozen dataclass costs twice as much to
    build, and ingest builds one per fact)."""

    id: str
    type: str
    at: datetime
    body: dict[str, Any]  # the whole JSON object, including the envelope

    @property
    def day(self) -> date:
        """date(at): the calendar date in the timestamp's own offset."""
        return self.at.date()


# ---------------------------------------------------------------- field checks
# Each check's first lines accept the common, valid value with as little work
# as possible (ingest runs them a million times a file); anything else falls
# through to the full check, which names what is wrong. `type(v) is str`
# there is deliberate: orjson gives exact types, and a subclass, a bool for an
# int or a missing field takes the full path.


def _require(obj: dict[str, Any], name: str, ftype: str) -> Any:
    if name not in obj:
        raise MissingField(f"field '{name}' is required for {ftype}", field=name)
    return obj[name]


def check_string(obj: dict[str, Any], name: str, ftype: str) -> str:
    value = obj.get(name)
    if type(value) is str and value:
        return value
    value = _require(obj, name, ftype)
    if not isinstance(value, str):
        raise WrongType(f"field '{name}' must be a string, got {_json_type(value)}", field=name)
    if not value:
        raise BadFormat(f"field '{name}' must not be empty", field=name)
    return value


def check_fact_id(obj: dict[str, Any], name: str, ftype: str) -> str:
    value = obj.get(name)
    if type(value) is str and _FACT_ID(value):
        return value
    value = check_string(obj, name, ftype)
    if not FACT_ID_RE.fullmatch(value):
        raise BadFormat(
            f"field '{name}' must be 1-128 characters of [A-Za-z0-9._:/-], got {value[:40]!r}",
            field=name,
        )
    return value


def check_digits16(obj: dict[str, Any], name: str, ftype: str) -> str:
    value = obj.get(name)
    if type(value) is str and _DIGITS16(value):
        return value
    value = _require(obj, name, ftype)
    if not isinstance(value, str):
        raise WrongType(
            f"field '{name}' must be a string of 16 digits, got {_json_type(value)}", field=name
        )
    if not DIGITS16_RE.fullmatch(value):
        shown = mask_nik(value) if len(value) == 16 else f"{len(value)} characters"
        raise BadIdentifier(
            f"field '{name}' must be exactly 16 ASCII digits, got {shown}", field=name
        )
    return value


def check_choice(obj: dict[str, Any], name: str, ftype: str, choices: frozenset[str]) -> str:
    value = obj.get(name)
    if type(value) is str and value in choices:
        return value
    value = check_string(obj, name, ftype)
    if value not in choices:
        raise BadFormat(
            f"field '{name}' must be one of {', '.join(sorted(choices))}, got {value[:40]!r}",
            field=name,
        )
    return value


def check_int(obj: dict[str, Any], name: str, ftype: str) -> int:
    value = obj.get(name)
    if type(value) is int:
        return value
    value = _require(obj, name, ftype)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WrongType(f"field '{name}' must be an integer, got {_json_type(value)}", field=name)
    return value


#: The largest amount one 64-bit signed integer column holds (an order's amount is
#: stored as one). Sums of amounts are kept exact past 64 bits (read models use
#: Python integers and NUMERIC or decimal text); above this an amount is refused.
MAX_AMOUNT = 2**63 - 1


def check_amount(obj: dict[str, Any], name: str, ftype: str) -> int:
    raw = obj.get(name)
    if type(raw) is int and 0 < raw <= MAX_AMOUNT:
        return raw
    if isinstance(raw, float) and raw.is_integer() and raw > MAX_AMOUNT:
        # the JSON parser turns an integer beyond 64 bits into a float
        raise AmountTooLarge(f"field '{name}' must be at most {MAX_AMOUNT} rupiah, got {raw:.0f}", field=name)
    value = check_int(obj, name, ftype)
    if value <= 0:
        raise NonPositiveAmount(
            f"field '{name}' must be a positive number of rupiah, got {value}", field=name
        )
    if value > MAX_AMOUNT:
        raise AmountTooLarge(f"field '{name}' must be at most {MAX_AMOUNT} rupiah, got {value}", field=name)
    return value


def check_month(obj: dict[str, Any], name: str, ftype: str) -> str:
    value = check_string(obj, name, ftype)
    try:
        parse_month(value)
    except ValueError:
        raise BadFormat(f"field '{name}' must be a month YYYY-MM, got {value[:40]!r}", field=name) from None
    return value


def check_period(obj: dict[str, Any], name: str, ftype: str) -> str:
    value = check_string(obj, name, ftype)
    try:
        parse_period(value)
    except ValueError as exc:
        raise BadFormat(
            f"field '{name}' must be YYYY-Tn, YYYY-MM or YYYY-MM/YYYY-MM ({exc})", field=name
        ) from None
    return value


def check_date(obj: dict[str, Any], name: str, ftype: str) -> str:
    value = check_string(obj, name, ftype)
    try:
        if not DATE_RE.fullmatch(value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise BadFormat(f"field '{name}' must be a date YYYY-MM-DD, got {value[:40]!r}", field=name) from None
    return value


def check_timestamp(obj: dict[str, Any], name: str, ftype: str) -> datetime:
    value = check_string(obj, name, ftype)
    try:
        if not TIMESTAMP_RE.fullmatch(value):
            raise ValueError
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise BadFormat(
            f"field '{name}' must be an RFC 3339 timestamp with offset, e.g. "
            f"2024-03-05T10:00:00+07:00, got {value[:40]!r}",
            field=name,
        ) from None
    return parsed


def check_region(obj: dict[str, Any], name: str, ftype: str) -> str:
    region = check_string(obj, name, ftype)
    if not REGION_RE.fullmatch(region):
        raise BadFormat(f"field '{name}' must be a 10-digit village code, got {region[:40]!r}", field=name)
    return region


def check_optional_text(obj: dict[str, Any], name: str) -> None:
    """An optional free-text field: any string (empty too) when present."""
    if name in obj and not isinstance(obj[name], str):
        raise WrongType(f"field '{name}' must be a string, got {_json_type(obj[name])}", field=name)


def check_object(obj: dict[str, Any], name: str, ftype: str) -> dict[str, Any]:
    value = _require(obj, name, ftype)
    if not isinstance(value, dict):
        raise WrongType(f"field '{name}' must be an object, got {_json_type(value)}", field=name)
    return value


def check_components(
    obj: dict[str, Any], name: str, ftype: str, value_check: Callable[[dict[str, Any], str, str], int]
) -> dict[str, int]:
    mapping = check_object(obj, name, ftype)
    for component in mapping:
        if component not in PKH_COMPONENTS:
            raise BadFormat(
                f"field '{name}' has unknown PKH component {component[:40]!r}; "
                f"known: {', '.join(sorted(PKH_COMPONENTS))}",
                field=name,
            )
        value_check(mapping, component, f"{ftype}.{name}")
    return mapping


def check_count(obj: dict[str, Any], name: str, ftype: str) -> int:
    value = check_int(obj, name, ftype)
    if value < 1:
        raise BadFormat(f"field '{name}' must be a count of at least 1, got {value}", field=name)
    return value


def check_source(obj: dict[str, Any], ftype: str) -> None:
    source = obj.get("source")
    if type(source) is dict:
        kind, source_id = source.get("kind"), source.get("id")
        if type(kind) is str and kind in SOURCE_KINDS and type(source_id) is str and source_id:
            return
    source = check_object(obj, "source", ftype)
    if "kind" not in source:
        raise MissingField("field 'source.kind' is required", field="source.kind")
    kind = source["kind"]
    if not isinstance(kind, str):
        raise WrongType(f"field 'source.kind' must be a string, got {_json_type(kind)}", field="source.kind")
    if kind not in SOURCE_KINDS:
        raise BadFormat(
            f"field 'source.kind' must be one of {', '.join(sorted(SOURCE_KINDS))}, got {kind[:40]!r}",
            field="source.kind",
        )
    check_string(source, "id", "source")


# ----------------------------------------------------------------- fact types


def _rates_set(obj: dict[str, Any], t: str) -> None:
    program = check_choice(obj, "program", t, PROGRAMS)
    check_int(obj, "year", t)
    if program == "PKH":
        check_components(obj, "annual", t, check_amount)
        check_count(obj, "max_members", t)
    else:
        check_amount(obj, "monthly", t)


def _eligibility_decided(obj: dict[str, Any], t: str) -> None:
    check_digits16(obj, "kk", t)
    check_digits16(obj, "nik", t)
    program = check_choice(obj, "program", t, PROGRAMS)
    decision = check_choice(obj, "decision", t, DECISIONS)
    check_month(obj, "from", t)
    check_region(obj, "region", t)
    if program == "PKH" and decision == "eligible" or "components" in obj:
        check_components(obj, "components", t, check_count)
    check_optional_text(obj, "basis")


def _companion_assigned(obj: dict[str, Any], t: str) -> None:
    check_string(obj, "companion", t)
    check_digits16(obj, "kk", t)
    check_choice(obj, "program", t, PROGRAMS)
    check_month(obj, "from", t)


def _disbursement_ordered(obj: dict[str, Any], t: str) -> None:
    check_digits16(obj, "kk", t)
    check_digits16(obj, "nik", t)
    check_choice(obj, "program", t, PROGRAMS)
    check_period(obj, "period", t)
    check_amount(obj, "amount", t)
    check_choice(obj, "channel", t, CHANNELS)


def _disbursement_settled(obj: dict[str, Any], t: str) -> None:
    check_fact_id(obj, "disbursement", t)
    check_choice(obj, "status", t, SETTLEMENT_STATUSES)
    check_amount(obj, "amount", t)
    check_choice(obj, "channel", t, CHANNELS)


def _pickup_recorded(obj: dict[str, Any], t: str) -> None:
    check_fact_id(obj, "disbursement", t)
    check_digits16(obj, "nik", t)
    check_amount(obj, "amount", t)
    by = check_choice(obj, "by", t, PICKUP_BY)
    if by == "companion":
        check_string(obj, "companion", t)


def _funds_returned(obj: dict[str, Any], t: str) -> None:
    check_fact_id(obj, "disbursement", t)
    check_amount(obj, "amount", t)


def _asn_registered(obj: dict[str, Any], t: str) -> None:
    check_digits16(obj, "nik", t)
    check_string(obj, "agency", t)
    check_date(obj, "from", t)
    if "until" in obj:
        check_date(obj, "until", t)


def _death_recorded(obj: dict[str, Any], t: str) -> None:
    check_digits16(obj, "nik", t)
    check_date(obj, "date", t)


def _register_listed(obj: dict[str, Any], t: str) -> None:
    check_choice(obj, "register", t, REGISTER_CODES)
    check_digits16(obj, "nik", t)
    check_date(obj, "from", t)
    if "until" in obj:
        check_date(obj, "until", t)


def _complaint_filed(obj: dict[str, Any], t: str) -> None:
    check_choice(obj, "channel", t, COMPLAINT_CHANNELS)
    check_choice(obj, "category", t, COMPLAINT_CATEGORIES)
    check_region(obj, "region", t)
    for name in ("kk", "nik"):
        if name in obj:
            check_digits16(obj, name, t)
    if "disbursement" in obj:
        check_fact_id(obj, "disbursement", t)
    if "companion" in obj:
        check_string(obj, "companion", t)
    check_optional_text(obj, "text")


def _complaint_resolved(obj: dict[str, Any], t: str) -> None:
    check_fact_id(obj, "complaint", t)
    check_choice(obj, "outcome", t, COMPLAINT_OUTCOMES)
    check_optional_text(obj, "text")


FACT_TYPES: dict[str, Callable[[dict[str, Any], str], None]] = {
    "rates.set": _rates_set,
    "eligibility.decided": _eligibility_decided,
    "companion.assigned": _companion_assigned,
    "disbursement.ordered": _disbursement_ordered,
    "disbursement.settled": _disbursement_settled,
    "pickup.recorded": _pickup_recorded,
    "funds.returned": _funds_returned,
    "asn.registered": _asn_registered,
    "death.recorded": _death_recorded,
    "register.listed": _register_listed,
    "complaint.filed": _complaint_filed,
    "complaint.resolved": _complaint_resolved,
}


def readable_id(obj: Any) -> str | None:
    """The fact's id if it can be read at all (for rejection reports)."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str) and FACT_ID_RE.fullmatch(value):
            return value
    return None


def check_fact(obj: Any) -> Fact:
    """Validate one decoded JSON value as a SPEC fact (SPEC §1 ingest rules)."""
    if not isinstance(obj, dict):
        raise NotAnObject(f"a fact must be a JSON object, got {_json_type(obj)}")
    fact_id = check_fact_id(obj, "id", "every fact")
    ftype = check_string(obj, "type", "every fact")
    validator = FACT_TYPES.get(ftype)
    if validator is None:
        raise UnknownType(
            f"unknown fact type {ftype[:40]!r}; known: {', '.join(FACT_TYPES)}", field="type"
        )
    at = check_timestamp(obj, "at", ftype)
    check_source(obj, ftype)
    validator(obj, ftype)
    return Fact(fact_id, ftype, at, obj)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
