"""The one check for free text that must not carry a NIK or KK (API `reason`,
erasure order reference): `holds_sixteen_digits`.

Property tests (hypothesis): 16 digits stay found whatever non-letter
characters are typed between them and whichever digit forms are used
(fullwidth, superscript, circled, other scripts); a letter between digits
ends a run, so ordinary references with dates and numbers pass.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, strategies as st

from jejak.domain.nik import holds_sixteen_digits

NIK = "1275010101050001"

#: The separators the old pattern let through, and other ways a digit or a gap can be typed.
SEPARATORS = ["+", "|", "#", "*", "'", "~", "\\", "%", "=", "(", ")", "\u2013", "\u2014", "\u200b", "\u2060",
              "\ufeff", " ", "-", ".", "/", "_", ",", ":", ";", "\u00a0", "\u3000", "\u202e", "\t"]
SUPERSCRIPT = {"0": "\u2070", "1": "\u00b9", "2": "\u00b2", "3": "\u00b3", **{str(d): chr(0x2070 + d) for d in range(4, 10)}}
CIRCLED = {"0": "\u24ea", **{str(d): chr(0x2460 + d - 1) for d in range(1, 10)}}
FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
ARABIC_INDIC = {str(d): chr(0x0660 + d) for d in range(10)}
DIGIT_FORMS = [None, SUPERSCRIPT, CIRCLED, FULLWIDTH, ARABIC_INDIC]

#: Characters that are neither letters nor digits after NFKC (what may sit between digits).
_gap_char = st.characters(categories=["P", "S", "Z", "Cc", "Cf", "Mn", "Me"], codec="utf-8").filter(
    lambda c: not any(ch.isalpha() or ch.isdigit() for ch in unicodedata.normalize("NFKC", c)))
gaps = st.text(_gap_char, max_size=3)


@pytest.mark.parametrize("separator", SEPARATORS)
def test_every_separator_between_digits_is_passed_over(separator: str) -> None:
    assert holds_sixteen_digits(separator.join(NIK))
    assert holds_sixteen_digits(f"kasus {NIK[:6]}{separator}{NIK[6:12]}{separator}{NIK[12:]} 2024")


@pytest.mark.parametrize("form", DIGIT_FORMS[1:], ids=["superscript", "circled", "fullwidth", "arabic-indic"])
def test_other_digit_forms_count(form: dict[str, str]) -> None:
    assert holds_sixteen_digits("".join(form[d] for d in NIK))


@given(digits=st.text("0123456789", min_size=16, max_size=20), between=st.lists(gaps, min_size=20, max_size=20),
       form=st.sampled_from(DIGIT_FORMS), prefix=st.text(max_size=5), suffix=st.text(max_size=5))
def test_sixteen_digits_split_by_anything_but_letters_are_found(digits, between, form, prefix, suffix) -> None:
    shown = [form[d] if form else d for d in digits]
    text = prefix + "".join(d + gap for d, gap in zip(shown, between)) + suffix
    assert holds_sixteen_digits(text)


@given(runs=st.lists(st.text("0123456789", min_size=1, max_size=15), min_size=1, max_size=6),
       letters=st.lists(st.text(st.characters(categories=["Lu", "Ll"]).filter(str.isalpha), min_size=1, max_size=3),
                        min_size=6, max_size=6),
       between=gaps)
def test_a_letter_ends_a_run(runs, letters, between) -> None:
    text = "".join(between.join(run) + letter for run, letter in zip(runs, letters))
    if any(holds_sixteen_digits(letter) for letter in letters):  # a letter whose NFKC form holds digits
        return
    assert not holds_sixteen_digits(text)


def test_ordinary_references_pass() -> None:
    for reason in ("complaint 2024/117", "audit 2024-03-05 to 2024-06-30 ref 12345",
                   "Putusan PN Medan No. 123/Pdt.G/2024/PN Mdn", "surat 470/1275/2024 tgl 2024-04-01"):
        assert not holds_sixteen_digits(reason), reason


def test_fifteen_digits_pass_sixteen_do_not() -> None:
    assert not holds_sixteen_digits("-".join(NIK[:15]))
    assert holds_sixteen_digits("-".join(NIK))
