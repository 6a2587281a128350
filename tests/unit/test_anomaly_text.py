"""Anomaly findings in Indonesian (issue 17, item 7)."""

from __future__ import annotations

from jejak.anomaly_text import detail_in, from_accept_language


def test_both_forms_of_the_conditional_texts() -> None:
    assert detail_in("recipient registered as civil servant from 2021-03-01 until 2024-04-01 when ordered on "
                     "2024-02-05", "id") == ("penerima terdaftar sebagai ASN sejak 2021-03-01 sampai 2024-04-01 "
                                             "ketika perintah bayar dibuat pada 2024-02-05")
    assert detail_in("pickups total 5 > ordered amount 4", "id") == "total pencairan 5 melebihi nominal perintah bayar 4"
    assert detail_in("something jejak does not say", "id") == "something jejak does not say"


def test_accept_language() -> None:
    assert from_accept_language(None) == "en"
    assert from_accept_language("id") == "id"
    assert from_accept_language("id-ID,id;q=0.9,en-US;q=0.8,en;q=0.7") == "id"
    assert from_accept_language("en-US,en;q=0.9,id;q=0.8") == "en"
    assert from_accept_language("fr, id;q=0.5") == "id"
    assert from_accept_language("de") == "en"
