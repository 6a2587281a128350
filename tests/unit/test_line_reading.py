"""Reading an ingest input: lines streamed with a length cap, and inputs that
are not JSON lines at all refused before anything is read on."""

from __future__ import annotations

import io

import pytest

from jejak.domain.errors import LineTooLong
from jejak.ledger import UnusableInput, _batches, bounded_lines
from jejak.preparer import FactPreparer, OversizedLine, parse_json_line
from jejak.store.vault import Tokenizer


def test_lines_up_to_the_limit_pass_whole_and_a_longer_one_comes_as_its_length() -> None:
    limit = 10
    data = b"0123456789\n" + b"x" * 25 + b"\n" + b"01234567890\n" + b"\n" + b"last"
    out = list(bounded_lines(io.BytesIO(data), limit))
    assert out[0] == b"0123456789\n"  # exactly the limit, newline excluded
    assert type(out[1]) is OversizedLine and out[1] == OversizedLine.of(25, limit)
    assert type(out[2]) is OversizedLine and out[2] == OversizedLine.of(11, limit)
    assert out[3:] == [b"\n", b"last"]  # line numbering is kept: one item per line


def test_an_over_long_last_line_without_newline_is_measured_whole() -> None:
    out = list(bounded_lines(io.BytesIO(b"a\n" + b"y" * 200_000), 1024))
    assert out == [b"a\n", OversizedLine.of(200_000, 1024)]


def test_an_oversized_line_is_rejected_with_its_own_code_and_a_real_line_never_is() -> None:
    with pytest.raises(LineTooLong, match="25 bytes, more than the 10"):
        parse_json_line(OversizedLine.of(25, 10))
    rejected = FactPreparer(Tokenizer(b"k" * 32)).prepare([OversizedLine.of(25, 10), b"25 10", b"25"]).rejected
    assert [(r.slot, r.code) for r in rejected] == [(0, "line_too_long"), (1, "invalid_json"), (2, "not_an_object")]


@pytest.mark.parametrize("first", [
    b"\x1f\x8b\x08\x00rest", b"BZh91AY&SYrest", b"\xfd7zXZ\x00rest", b"\x28\xb5\x2f\xfdrest", b"PK\x03\x04rest",
    b"\xff\xfe{\x00\"\x00i\x00d\x00", b"{\x00\"\x00i\x00d\x00", b"\x00{\x00\"\x00i\x00d",
])
def test_a_first_line_that_says_compressed_or_utf16_makes_the_input_unusable(first: bytes) -> None:
    with pytest.raises(UnusableInput, match="nothing was recorded"):
        list(_batches([first + b"\n", b'{"id": "o-1"}\n'], 10))


@pytest.mark.parametrize("first", [b"\xff\xfe\xfd", b"\x1f\x8b", b"BZh9", b"\x00\x00\x00", b"\xff\xfe\x00\x00", b"\x80abc"])
def test_a_garbage_first_line_is_only_a_bad_line(first: bytes) -> None:
    """Not UTF-8, or a stray magic-like prefix: one rejected line (exit 3), the rest goes on."""
    assert list(_batches([first + b"\n", b'{"id": "o-1"}\n'], 10)) == [([1, 2], [first + b"\n", b'{"id": "o-1"}\n'])]


def test_the_same_bytes_after_the_first_line_are_only_a_bad_line() -> None:
    assert list(_batches([b'{"id": "o-1"}\n', b"\x1f\x8b\n"], 10)) == [([1, 2], [b'{"id": "o-1"}\n', b"\x1f\x8b\n"])]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_or_32_without_a_byte_order_mark_is_told_after_blank_lines_too(encoding: str) -> None:
    data = "\n  \n" + '{"id": "o-1", "type": "rates.set"}\n'
    with pytest.raises(UnusableInput, match="UTF-16 or UTF-32"):
        list(_batches(io.BytesIO(data.encode(encoding)), 10))


def test_a_first_fact_with_one_stray_nul_byte_is_only_a_bad_line() -> None:
    first = b'{"id": "o-1", "note": "a\x00b", "type": "rates.set"}\n'
    assert list(_batches([b"\n", first, b'{"id": "o-2"}\n'], 10)) == [([2, 3], [first, b'{"id": "o-2"}\n'])]
