"""SPEC §1 fact validation: every rejection reason, per fact type, with its error code.

Runs `check_fact` (the single validator every entry point uses) on real
decoded JSON values; no mocks.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from jejak.domain.errors import (
    BadFormat,
    BadIdentifier,
    FactRejected,
    MissingField,
    NonPositiveAmount,
    NotAnObject,
    UnknownType,
    WrongType,
)
from jejak.domain.facts import check_fact

NIK = "1275016708770229"
KK = "1275011104052510"
AT = "2024-03-05T10:00:00+07:00"


def _env(fid: str, ftype: str, kind: str) -> dict[str, Any]:
    return {"id": fid, "type": ftype, "at": AT, "source": {"kind": kind, "id": f"{kind}-1"}}


VALID: dict[str, dict[str, Any]] = {
    "rates.set": {
        **_env("kemensos:rates:2024:PKH", "rates.set", "kemensos"),
        "program": "PKH", "year": 2024, "max_members": 4,
        "annual": {"ibu_hamil": 3000000, "anak_sd": 900000, "lansia": 2400000},
    },
    "eligibility.decided": {
        **_env("dinsos:elig:1", "eligibility.decided", "dinsos"),
        "kk": KK, "nik": NIK, "program": "PKH", "decision": "eligible", "from": "2024-01",
        "region": "1275011002", "components": {"anak_sd": 2, "lansia": 1}, "basis": "SK 2024",
    },
    "companion.assigned": {
        **_env("dinsos:comp:1", "companion.assigned", "dinsos"),
        "companion": "pdp-17", "kk": KK, "program": "PKH", "from": "2024-01",
    },
    "disbursement.ordered": {
        **_env("kemensos:ord:1", "disbursement.ordered", "kemensos"),
        "kk": KK, "nik": NIK, "program": "PKH", "period": "2024-T1", "amount": 750000, "channel": "BRI",
    },
    "disbursement.settled": {
        **_env("bank:set:1", "disbursement.settled", "bank"),
        "disbursement": "kemensos:ord:1", "status": "credited", "amount": 750000, "channel": "BRI",
    },
    "pickup.recorded": {
        **_env("pos:pick:1", "pickup.recorded", "pos"),
        "disbursement": "kemensos:ord:1", "nik": NIK, "amount": 750000, "by": "companion", "companion": "pdp-17",
    },
    "funds.returned": {
        **_env("bank:ret:1", "funds.returned", "bank"),
        "disbursement": "kemensos:ord:1", "amount": 50000,
    },
    "asn.registered": {
        **_env("bkn:asn:1", "asn.registered", "bkn"),
        "nik": NIK, "agency": "Pemkot Medan", "from": "2020-01-01", "until": "2030-01-01",
    },
    "death.recorded": {
        **_env("dukcapil:death:1", "death.recorded", "dukcapil"),
        "nik": NIK, "date": "2024-02-01",
    },
    "register.listed": {
        **_env("pln:1", "register.listed", "registry"),
        "register": "listrik_nonsubsidi", "nik": NIK, "from": "2023-01-01", "until": "2025-01-01",
    },
    "complaint.filed": {
        **_env("lapor:1", "complaint.filed", "public"),
        "channel": "lapor", "category": "not_received", "region": "1275011002", "kk": KK, "nik": NIK,
        "disbursement": "kemensos:ord:1", "companion": "pdp-17", "text": "uang belum diterima",
    },
    "complaint.resolved": {
        **_env("dinsos:res:1", "complaint.resolved", "dinsos"),
        "complaint": "lapor:1", "outcome": "upheld", "text": "sudah dibayar ulang",
    },
}

#: Required fields (beyond the envelope) per type, for the valid examples above.
REQUIRED: dict[str, tuple[str, ...]] = {
    "rates.set": ("program", "year", "annual", "max_members"),
    "eligibility.decided": ("kk", "nik", "program", "decision", "from", "region", "components"),
    "companion.assigned": ("companion", "kk", "program", "from"),
    "disbursement.ordered": ("kk", "nik", "program", "period", "amount", "channel"),
    "disbursement.settled": ("disbursement", "status", "amount", "channel"),
    "pickup.recorded": ("disbursement", "nik", "amount", "by", "companion"),
    "funds.returned": ("disbursement", "amount"),
    "asn.registered": ("nik", "agency", "from"),
    "death.recorded": ("nik", "date"),
    "register.listed": ("register", "nik", "from"),
    "complaint.filed": ("channel", "category", "region"),
    "complaint.resolved": ("complaint", "outcome"),
}
ENVELOPE = ("id", "type", "at", "source")
TYPES = tuple(VALID)

AMOUNT_FIELDS = {t: "amount" for t in TYPES if "amount" in VALID[t]}
DIGIT_FIELDS = [(t, f) for t in TYPES for f in ("nik", "kk") if f in VALID[t]]
STRING_FIELDS = [
    (t, f) for t in TYPES for f in REQUIRED[t] if isinstance(VALID[t][f], str)
]


def variant(ftype: str, **changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(VALID[ftype])
    for name, value in changes.items():
        if value is _DELETE:
            del obj[name]
        else:
            obj[name] = value
    return obj


_DELETE = object()

SIXTEEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{16}(?![0-9])")


def rejected(obj: Any, expected: type[FactRejected], field: str | None = None) -> FactRejected:
    with pytest.raises(FactRejected) as info:
        check_fact(obj)
    exc = info.value
    assert type(exc) is expected, f"expected {expected.code}, got {exc.code}: {exc.message}"
    assert exc.code == expected.code
    if field is not None:
        assert exc.field == field, exc.message
        assert field in exc.message, f"message must name the field {field!r}: {exc.message}"
    assert not SIXTEEN_DIGITS.search(exc.message), f"a full 16-digit value leaked: {exc.message}"
    assert not SIXTEEN_DIGITS.search(str(exc))
    return exc


# ------------------------------------------------------------------ accepted


@pytest.mark.parametrize("ftype", TYPES)
def test_valid_example_of_every_type_is_accepted(ftype: str) -> None:
    fact = check_fact(copy.deepcopy(VALID[ftype]))
    assert fact.type == ftype
    assert fact.id == VALID[ftype]["id"]
    assert fact.at.utcoffset() is not None


@pytest.mark.parametrize(
    "obj",
    [
        {**_env("kemensos:rates:2024:BPNT", "rates.set", "kemensos"), "program": "BPNT", "year": 2024, "monthly": 200000},
        variant("eligibility.decided", decision="revoked", components=_DELETE, basis=_DELETE),
        variant("eligibility.decided", program="BPNT", components=_DELETE),
        variant("pickup.recorded", by="recipient", companion=_DELETE),
        variant("pickup.recorded", by="family", companion=_DELETE),
        variant("asn.registered", until=_DELETE),
        variant("disbursement.settled", status="failed"),
        variant("disbursement.ordered", period="2024-03"),
        variant("disbursement.ordered", period="2024-01/2024-06"),
        variant("disbursement.ordered", period="2024-05/2024-05"),
        variant("disbursement.ordered", at="2024-03-05T10:00:00Z"),
        variant("disbursement.ordered", at="2024-03-05T10:00:00.123-03:30"),
        variant("disbursement.ordered", id="a" * 128),
        variant("disbursement.ordered", id="A.b_c:d/e-9"),
        variant("disbursement.ordered", extra_field={"kept": True}),
        variant("disbursement.ordered", nik="0000000000000000"),  # impossible NIK is an anomaly, not a rejection
        variant("register.listed", until=_DELETE),
        variant("register.listed", until="2022-01-01"),  # until <= from: never in force, not a rejection
        variant("complaint.filed", kk=_DELETE, nik=_DELETE, disbursement=_DELETE, companion=_DELETE, text=_DELETE),
        variant("complaint.filed", disbursement="never-seen-order", text=""),
        variant("complaint.resolved", text=_DELETE, complaint="no-such-complaint"),
    ],
    ids=lambda o: o.get("id", "?")[:20] + "/" + o["type"],
)
def test_other_valid_variants_are_accepted(obj: dict[str, Any]) -> None:
    assert check_fact(obj).id == obj["id"]


def test_every_source_kind_is_accepted() -> None:
    for kind in ("kemensos", "dinsos", "bank", "pos", "pendamping", "bkn", "dukcapil", "registry", "public"):
        check_fact(variant("death.recorded", source={"kind": kind, "id": "x"}))


def test_every_channel_is_accepted() -> None:
    for channel in ("BRI", "BNI", "MANDIRI", "BTN", "BSI", "POS"):
        check_fact(variant("disbursement.ordered", channel=channel))
        check_fact(variant("disbursement.settled", channel=channel))


def test_every_pkh_component_is_accepted() -> None:
    comps = ("ibu_hamil", "anak_usia_dini", "anak_sd", "anak_smp", "anak_sma", "disabilitas_berat", "lansia")
    check_fact(variant("eligibility.decided", components={c: 1 for c in comps}))
    check_fact(variant("rates.set", annual={c: 100 for c in comps}))


# ------------------------------------------------------------------ envelope


def test_not_an_object() -> None:
    for value in ([], "fact", 3, None, True):
        rejected(value, NotAnObject)


@pytest.mark.parametrize("ftype", TYPES)
@pytest.mark.parametrize("name", ENVELOPE)
def test_missing_envelope_field(ftype: str, name: str) -> None:
    rejected(variant(ftype, **{name: _DELETE}), MissingField, name)


@pytest.mark.parametrize("ftype", TYPES)
def test_unknown_type(ftype: str) -> None:
    rejected(variant(ftype, type="disbursement.cancelled"), UnknownType, "type")


def test_type_wrong_type() -> None:
    rejected(variant("death.recorded", type=7), WrongType, "type")


@pytest.mark.parametrize("ftype", TYPES)
@pytest.mark.parametrize(
    "bad_at",
    [
        "2024-03-05T10:00:00",  # no offset
        "2024-03-05 10:00:00+07:00",  # space instead of T
        "2024-03-05",
        "2024-13-05T10:00:00+07:00",
        "2024-03-05T25:00:00+07:00",
        "2024-03-05T10:00+07:00",
        "05/03/2024 10:00",
        "2024-03-05T10:00:00+0700",
        "2024-02-30T10:00:00+07:00",
        " 2024-03-05T10:00:00+07:00",
    ],
)
def test_at_bad_format(ftype: str, bad_at: str) -> None:
    rejected(variant(ftype, at=bad_at), BadFormat, "at")


def test_at_wrong_type() -> None:
    rejected(variant("death.recorded", at=1709607600), WrongType, "at")


@pytest.mark.parametrize("bad_id", ["", "a" * 129, "has space", "ümlaut", "semi;colon", "a#b", "a\nb"])
def test_id_bad_format(bad_id: str) -> None:
    rejected(variant("death.recorded", id=bad_id), BadFormat, "id")


def test_id_wrong_type() -> None:
    rejected(variant("death.recorded", id=123), WrongType, "id")


def test_source_rejections() -> None:
    rejected(variant("death.recorded", source="dukcapil"), WrongType, "source")
    rejected(variant("death.recorded", source={"id": "x"}), MissingField, "source.kind")
    rejected(variant("death.recorded", source={"kind": "kpu", "id": "x"}), BadFormat, "source.kind")
    rejected(variant("death.recorded", source={"kind": 1, "id": "x"}), WrongType, "source.kind")
    rejected(variant("death.recorded", source={"kind": "dukcapil"}), MissingField, "id")
    rejected(variant("death.recorded", source={"kind": "dukcapil", "id": 5}), WrongType, "id")


# ------------------------------------------------------------ per-type fields


@pytest.mark.parametrize(
    "ftype,name", [(t, f) for t in TYPES for f in REQUIRED[t]], ids=lambda v: v
)
def test_missing_required_field(ftype: str, name: str) -> None:
    rejected(variant(ftype, **{name: _DELETE}), MissingField, name)


def test_bpnt_rates_need_monthly() -> None:
    obj = {**_env("r:b", "rates.set", "kemensos"), "program": "BPNT", "year": 2024}
    rejected(obj, MissingField, "monthly")


@pytest.mark.parametrize("ftype,name", STRING_FIELDS, ids=lambda v: v)
def test_string_field_wrong_type(ftype: str, name: str) -> None:
    rejected(variant(ftype, **{name: 12345}), WrongType, name)
    rejected(variant(ftype, **{name: None}), WrongType, name)


@pytest.mark.parametrize("ftype,name", DIGIT_FIELDS, ids=lambda v: v)
@pytest.mark.parametrize(
    "bad",
    ["127501670877022", "12750167087702291", "12750167087702A9", "1275 01670877022", "１２７５０１６７０８７７０２２９"[:16], ""],
    ids=["15", "17", "letter", "space", "fullwidth", "empty"],
)
def test_nik_kk_not_16_digits(ftype: str, name: str, bad: str) -> None:
    exc = check_fact_error(variant(ftype, **{name: bad}))
    # An empty string may be reported as bad_format (empty) or bad_identifier.
    if bad == "":
        assert exc.code in (BadIdentifier.code, BadFormat.code)
    else:
        assert exc.code == BadIdentifier.code, exc.message
    assert exc.field == name and name in exc.message
    assert NIK not in exc.message and KK not in exc.message
    assert not SIXTEEN_DIGITS.search(exc.message)


@pytest.mark.parametrize("ftype,name", DIGIT_FIELDS, ids=lambda v: v)
def test_nik_kk_int_instead_of_string(ftype: str, name: str) -> None:
    exc = rejected(variant(ftype, **{name: int(VALID[ftype][name])}), WrongType, name)
    assert VALID[ftype][name] not in exc.message


def test_nik_with_non_ascii_digits_is_masked() -> None:
    # 16 characters, one of them a non-ASCII digit: rejected, and the message masks it.
    bad = NIK[:15] + "٣"
    exc = rejected(variant("death.recorded", nik=bad), BadIdentifier, "nik")
    assert NIK[:15] not in exc.message


@pytest.mark.parametrize("ftype", sorted(AMOUNT_FIELDS))
@pytest.mark.parametrize(
    "bad,error",
    [(0, NonPositiveAmount), (-1, NonPositiveAmount), (-750000, NonPositiveAmount),
     (750000.0, WrongType), (1.5, WrongType), ("750000", WrongType), (True, WrongType), (None, WrongType)],
    ids=["zero", "minus1", "negative", "float-integral", "float", "string", "bool", "null"],
)
def test_amount(ftype: str, bad: Any, error: type[FactRejected]) -> None:
    rejected(variant(ftype, amount=bad), error, "amount")


def test_rates_amounts() -> None:
    rejected(variant("rates.set", annual={"lansia": 0}), NonPositiveAmount)
    rejected(variant("rates.set", annual={"lansia": -5}), NonPositiveAmount)
    rejected(variant("rates.set", annual={"lansia": "5"}), WrongType)
    rejected(variant("rates.set", annual={"lansia": 5.0}), WrongType)
    rejected(variant("rates.set", annual=[1, 2]), WrongType, "annual")
    bpnt = {**_env("r:b", "rates.set", "kemensos"), "program": "BPNT", "year": 2024}
    rejected({**bpnt, "monthly": 0}, NonPositiveAmount, "monthly")
    rejected({**bpnt, "monthly": -200000}, NonPositiveAmount, "monthly")
    rejected({**bpnt, "monthly": 200000.5}, WrongType, "monthly")
    rejected({**bpnt, "monthly": False}, WrongType, "monthly")
    rejected(variant("rates.set", year="2024"), WrongType, "year")
    rejected(variant("rates.set", year=2024.0), WrongType, "year")
    rejected(variant("rates.set", max_members="4"), WrongType, "max_members")
    rejected(variant("rates.set", program="PKH2"), BadFormat, "program")


def test_unknown_pkh_component() -> None:
    rejected(variant("eligibility.decided", components={"anak_kuliah": 1}), BadFormat, "components")
    rejected(variant("rates.set", annual={"anak_kuliah": 100}), BadFormat, "annual")


def test_component_counts() -> None:
    rejected(variant("eligibility.decided", components={"anak_sd": "2"}), WrongType)
    rejected(variant("eligibility.decided", components={"anak_sd": 1.0}), WrongType)
    rejected(variant("eligibility.decided", components="anak_sd"), WrongType, "components")


@pytest.mark.parametrize("ftype", [t for t in TYPES if "program" in VALID[t]])
def test_program_value(ftype: str) -> None:
    rejected(variant(ftype, program="BLT"), BadFormat, "program")
    rejected(variant(ftype, program="pkh"), BadFormat, "program")


def test_decision_value() -> None:
    rejected(variant("eligibility.decided", decision="approved"), BadFormat, "decision")
    rejected(variant("eligibility.decided", decision=True), WrongType, "decision")


@pytest.mark.parametrize("ftype", ["disbursement.ordered", "disbursement.settled"])
def test_channel_value(ftype: str) -> None:
    rejected(variant(ftype, channel="BCA"), BadFormat, "channel")
    rejected(variant(ftype, channel="bri"), BadFormat, "channel")


def test_status_and_by_values() -> None:
    rejected(variant("disbursement.settled", status="pending"), BadFormat, "status")
    rejected(variant("pickup.recorded", by="neighbour"), BadFormat, "by")


def test_pickup_by_companion_needs_companion() -> None:
    rejected(variant("pickup.recorded", companion=_DELETE), MissingField, "companion")
    rejected(variant("pickup.recorded", companion=17), WrongType, "companion")


@pytest.mark.parametrize(
    "bad",
    ["2024-T5", "2024-T0", "2024-13", "2024-00", "2024-06/2024-01", "2024-1", "24-01", "2024-T1/2024-T2",
     "2024-01/2024-13", "2024-01 ", "2024-01/", ""],
)
def test_period_bad_format(bad: str) -> None:
    rejected(variant("disbursement.ordered", period=bad), BadFormat, "period")


@pytest.mark.parametrize("ftype", ["eligibility.decided", "companion.assigned"])
@pytest.mark.parametrize("bad", ["2024-13", "2024-00", "2024-1", "2024-01-01", "2024-T1", "202401"])
def test_month_bad_format(ftype: str, bad: str) -> None:
    rejected(variant(ftype, **{"from": bad}), BadFormat, "from")


@pytest.mark.parametrize(
    "ftype,name", [("asn.registered", "from"), ("asn.registered", "until"), ("death.recorded", "date"),
                   ("register.listed", "from"), ("register.listed", "until")]
)
@pytest.mark.parametrize("bad", ["2024-02-30", "2024-13-01", "2024-2-01", "01-02-2024", "2024-02-01T00:00:00+07:00", "20240201"])
def test_date_bad_format(ftype: str, name: str, bad: str) -> None:
    rejected(variant(ftype, **{name: bad}), BadFormat, name)


@pytest.mark.parametrize("ftype", ["eligibility.decided", "complaint.filed"])
@pytest.mark.parametrize("bad", ["127501100", "12750110021", "12750110a2", "1275.11.1002"])
def test_region_bad_format(ftype: str, bad: str) -> None:
    rejected(variant(ftype, region=bad), BadFormat, "region")


@pytest.mark.parametrize("ftype", ["eligibility.decided", "complaint.filed"])
def test_region_wrong_type(ftype: str) -> None:
    rejected(variant(ftype, region=1275011002), WrongType, "region")


def test_every_register_is_accepted_and_no_other() -> None:
    for register in ("asn", "tni_polri", "pendamping", "perangkat_desa", "guru_sertifikasi",
                     "pengurus_badan_usaha", "upah_di_atas_ump", "listrik_nonsubsidi", "pemilik_mobil"):
        check_fact(variant("register.listed", register=register))
    exc = rejected(variant("register.listed", register="pemilik_motor"), BadFormat, "register")
    assert "pemilik_mobil" in exc.message and "'pemilik_motor'" in exc.message  # names the expected values
    rejected(variant("register.listed", register="ASN"), BadFormat, "register")
    rejected(variant("register.listed", register=["asn"]), WrongType, "register")


def test_complaint_enums() -> None:
    for channel in ("slrt", "cekbansos", "lapor", "pendamping", "walk_in"):
        check_fact(variant("complaint.filed", channel=channel))
    for category in ("not_received", "wrong_amount", "pungli", "inclusion_error", "exclusion_error", "other"):
        check_fact(variant("complaint.filed", category=category))
    for outcome in ("upheld", "partially_upheld", "rejected", "withdrawn", "referred"):
        check_fact(variant("complaint.resolved", outcome=outcome))
    rejected(variant("complaint.filed", channel="BRI"), BadFormat, "channel")
    rejected(variant("complaint.filed", category="fraud"), BadFormat, "category")
    rejected(variant("complaint.resolved", outcome="closed"), BadFormat, "outcome")
    rejected(variant("complaint.resolved", outcome=1), WrongType, "outcome")


def test_complaint_optional_fields() -> None:
    rejected(variant("complaint.filed", text=42), WrongType, "text")
    rejected(variant("complaint.resolved", text=["a"]), WrongType, "text")
    rejected(variant("complaint.filed", companion=17), WrongType, "companion")
    rejected(variant("complaint.filed", companion=""), BadFormat, "companion")
    rejected(variant("complaint.filed", disbursement="has space"), BadFormat, "disbursement")
    rejected(variant("complaint.filed", disbursement=None), WrongType, "disbursement")
    rejected(variant("complaint.resolved", complaint="x" * 129), BadFormat, "complaint")


def test_basis_wrong_type() -> None:
    rejected(variant("eligibility.decided", basis=42), WrongType, "basis")


@pytest.mark.parametrize("name", ["disbursement"])
@pytest.mark.parametrize("ftype", ["disbursement.settled", "pickup.recorded", "funds.returned"])
def test_reference_id_format(ftype: str, name: str) -> None:
    rejected(variant(ftype, **{name: "has space"}), BadFormat, name)
    rejected(variant(ftype, **{name: "x" * 129}), BadFormat, name)
    rejected(variant(ftype, **{name: 7}), WrongType, name)


def check_fact_error(obj: Any) -> FactRejected:
    with pytest.raises(FactRejected) as info:
        check_fact(obj)
    return info.value
