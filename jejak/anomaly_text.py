"""Anomaly findings in Indonesian (`jejak anomalies --lang id`, the API by
`Accept-Language`). The English `detail` stays the SPEC output; each of its
forms (projections/engine.py) has an Indonesian one here, filled with the
same values. A detail of no known form is left in English."""

from __future__ import annotations

import re
from typing import Any, Iterable

LANGUAGES = ("en", "id")

_ID = r"(\S+)"
_N = r"([0-9][0-9.]*)"
_M = r"([0-9]{4}-[0-9]{2})"
_D = r"([0-9]{4}-[0-9]{2}-[0-9]{2})"

#: (English form, Indonesian form) with numbered groups.
_FORMS: list[tuple[str, str]] = [
    (rf"order {_ID} covers month {_M} already covered by earlier non-failed order {_ID} \(([0-9]+) overlapping month\(s\)\)",
     r"perintah bayar \1 mencakup bulan \2 yang sudah dicakup perintah bayar sebelumnya \3 yang tidak gagal "
     r"(\4 bulan tumpang tindih)"),
    (rf"family not eligible for {_ID}: no eligibility decision in force at {_M}",
     r"keluarga tidak berhak atas \1: tidak ada penetapan kelayakan yang berlaku pada \2"),
    (rf"family not eligible for {_ID}: decision {_ID} in force at {_M} is {_ID}",
     r"keluarga tidak berhak atas \1: penetapan \2 yang berlaku pada \3 berstatus \4"),
    (rf"amount {_N} > entitlement {_N}", r"nominal \1 melebihi hak \2"),
    (rf"recipient registered as civil servant from {_D} until {_D} when ordered on {_D}",
     r"penerima terdaftar sebagai ASN sejak \1 sampai \2 ketika perintah bayar dibuat pada \3"),
    (rf"recipient registered as civil servant from {_D} when ordered on {_D}",
     r"penerima terdaftar sebagai ASN sejak \1 ketika perintah bayar dibuat pada \2"),
    (rf"order dated {_D} after recipient's death on {_D}",
     r"perintah bayar bertanggal \1, setelah penerima meninggal pada \2"),
    (rf"pickup dated {_D} after recipient's death on {_D}",
     r"pencairan bertanggal \1, setelah penerima meninggal pada \2"),
    (r"recipient NIK is 16 digits but not a possible NIK",
     r"NIK penerima 16 digit tetapi tidak mungkin sebuah NIK"),
    (rf"representative in eligible {_ID} decisions of ([0-9]+) families in force at a common month \(first {_M}\)",
     r"pengurus dalam penetapan \1 yang layak untuk \2 keluarga yang berlaku pada bulan yang sama (pertama \3)"),
    (rf"{_ID} settlement of {_N} references no known order",
     r"penyelesaian (\1) sebesar \2 merujuk perintah bayar yang tidak dikenal"),
    (rf"credited {_N} != ordered amount {_N}", r"dikreditkan \1, berbeda dari nominal perintah bayar \2"),
    (rf"pickup of {_N} references no known order", r"pencairan sebesar \1 merujuk perintah bayar yang tidak dikenal"),
    (rf"pickup of {_N} on an order whose settlement failed",
     r"pencairan sebesar \1 atas perintah bayar yang penyelesaiannya gagal"),
    (rf"companion pickup of {_N}: no companion assigned at {_M}",
     r"pencairan oleh pendamping sebesar \1: tidak ada pendamping yang ditugaskan pada \2"),
    (rf"companion pickup of {_N}: assignment {_ID} in force at {_M} names another companion",
     r"pencairan oleh pendamping sebesar \1: penugasan \2 yang berlaku pada \3 menunjuk pendamping lain"),
    (rf"pickups total {_N} > credited amount {_N}", r"total pencairan \1 melebihi nominal yang dikreditkan \2"),
    (rf"pickups total {_N} > ordered amount {_N}", r"total pencairan \1 melebihi nominal perintah bayar \2"),
    (rf"companion collected for ([0-9]+) families on {_ID} {_ID} \(threshold ([0-9]+)\)",
     r"pendamping mencairkan untuk \1 keluarga pada \2 \3 (ambang \4)"),
    (rf"{_N} of {_N} credited unclaimed for ([0-9]+) days \(> ([0-9]+)\)",
     r"\1 dari \2 yang dikreditkan belum dicairkan selama \3 hari (> \4)"),
    # SPEC v2 §5: the detail of barred_recipient / flagged_recipient is the register codes.
    (r"((?:[a-z_]+)(?:,[a-z_]+)*)", r"terdaftar dalam register: \1"),
    (rf"{_ID} resolution references no filed complaint",
     r"penyelesaian (\1) merujuk pengaduan yang tidak pernah diajukan"),
    (rf"complaint of {_D} says not received; ([0-9]+) pickup\(s\) of the order recorded on or before it \(first {_D}\)",
     r"pengaduan tanggal \1 menyatakan bantuan tidak diterima; \2 pencairan atas perintah bayar itu tercatat "
     r"pada atau sebelum tanggal itu (pertama \3)"),
    (r"([0-9]+) pungli complaints name the companion \(threshold ([0-9]+)\)",
     r"\1 pengaduan pungli menyebut pendamping ini (ambang \2)"),
    (r"complaint open for ([0-9]+) days \(> ([0-9]+)\)",
     r"pengaduan terbuka selama \1 hari (> \2)"),
]
_COMPILED = [(re.compile(english), indonesian) for english, indonesian in _FORMS]


def detail_in(detail: str, lang: str) -> str:
    """The detail in `lang` ("en": as it is)."""
    if lang != "id":
        return detail
    for pattern, indonesian in _COMPILED:
        match = pattern.fullmatch(detail)
        if match:
            return match.expand(indonesian)
    return detail


def in_language(anomalies: Iterable[dict[str, Any]], lang: str) -> Iterable[dict[str, Any]]:
    for anomaly in anomalies:
        yield anomaly if lang == "en" else {**anomaly, "detail": detail_in(anomaly["detail"], lang)}


def from_accept_language(header: str | None) -> str:
    """"id" when the client prefers Indonesian (`id`, `id-ID`; `in` is its old tag) to English, else "en"."""
    best, best_q = "en", 0.0
    for order, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        lang = "id" if primary in ("id", "in") else "en" if primary in ("en", "*") else None
        if lang is not None and q > best_q:
            best, best_q = lang, q
    return best
