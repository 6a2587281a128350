import dataclasses

import pytest

from jejak.domain.periods import Period, parse_month, parse_period


def test_stage_periods():
    for n in range(1, 5):
        p = parse_period(f"2024-T{n}")
        assert p.text == f"2024-T{n}"
        assert p.months == tuple((2024, m) for m in range(3 * n - 2, 3 * n + 1))


def test_single_month():
    assert parse_period("2024-05") == Period("2024-05", ((2024, 5),))


def test_range_inclusive_across_year():
    p = parse_period("2023-11/2024-02")
    assert p.months == ((2023, 11), (2023, 12), (2024, 1), (2024, 2))


def test_range_same_month():
    assert parse_period("2024-03/2024-03").months == ((2024, 3),)


def test_period_is_frozen():
    p = parse_period("2024-01")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.text = "x"
    assert p.text == "2024-01"


@pytest.mark.parametrize("bad", [
    "2024-T0", "2024-T5", "2024-t1", "24-T1", "2024-1", "2024-001", "24-01",
    "2024-00", "2024-13", "2024-05/2024-04", "2025-01/2024-12", "2024-01/2024-13",
    "2024-01/", "/2024-01", "2024-01/2024-02/2024-03", " 2024-01", "2024-01 ",
    "2024-01\n", "", "２０２４-01", "20240-01", "2024-T1/2024-T2",
])
def test_bad_periods(bad):
    with pytest.raises(ValueError):
        parse_period(bad)


def test_non_string_period():
    with pytest.raises(ValueError):
        parse_period(202401)


def test_parse_month():
    assert parse_month("2024-01") == (2024, 1)
    assert parse_month("2024-12") == (2024, 12)
    for bad in ["2024-00", "2024-13", "2024-1", "202401", "2024-T1", "2024-01-01", ""]:
        with pytest.raises(ValueError):
            parse_month(bad)
