import pytest

from jejak.domain.nik import PROVINCES, mask_nik, nik_is_possible

GOOD = "1275010101900001"  # 12 75 01 010190 0001


def nik(pp="12", kk="75", cc="01", dd="01", mm="01", yy="90", ss="0001"):
    s = pp + kk + cc + dd + mm + yy + ss
    assert len(s) == 16
    return s


def test_good():
    assert nik_is_possible(GOOD)


def test_province_set():
    assert len(PROVINCES) == 38
    ok = [11, 19, 21, 31, 36, 51, 53, 61, 65, 71, 76, 81, 82, 91, 96]
    bad = [0, 10, 20, 22, 30, 37, 50, 54, 60, 66, 70, 77, 80, 83, 90, 97, 99]
    for p in ok:
        assert nik_is_possible(nik(pp=f"{p:02d}")), p
    for p in bad:
        assert not nik_is_possible(nik(pp=f"{p:02d}")), p


def test_regency_district_zero():
    assert not nik_is_possible(nik(kk="00"))
    assert not nik_is_possible(nik(cc="00"))
    assert nik_is_possible(nik(kk="99", cc="99"))


@pytest.mark.parametrize("dd,ok", [
    ("00", False), ("01", True), ("31", True), ("32", False), ("40", False),
    ("41", True), ("71", True), ("72", False), ("99", False),
])
def test_day_ranges_january(dd, ok):
    assert nik_is_possible(nik(dd=dd, mm="01")) is ok


@pytest.mark.parametrize("mm,ok", [("00", False), ("01", True), ("12", True), ("13", False)])
def test_month(mm, ok):
    assert nik_is_possible(nik(mm=mm)) is ok


def test_days_in_month():
    assert not nik_is_possible(nik(dd="31", mm="04"))
    assert not nik_is_possible(nik(dd="71", mm="04"))  # woman, 31 April
    assert nik_is_possible(nik(dd="30", mm="04"))
    assert nik_is_possible(nik(dd="70", mm="04"))
    assert nik_is_possible(nik(dd="31", mm="12"))
    for mm in ("06", "09", "11"):
        assert not nik_is_possible(nik(dd="31", mm=mm))


def test_february():
    # 29 Feb always allowed: the century is unknown.
    for yy in ("00", "01", "23", "99"):
        assert nik_is_possible(nik(dd="29", mm="02", yy=yy))
        assert nik_is_possible(nik(dd="69", mm="02", yy=yy))
    assert not nik_is_possible(nik(dd="30", mm="02"))
    assert not nik_is_possible(nik(dd="70", mm="02"))
    assert nik_is_possible(nik(dd="28", mm="02"))


def test_serial():
    assert not nik_is_possible(nik(ss="0000"))
    assert nik_is_possible(nik(ss="0001"))
    assert nik_is_possible(nik(ss="9999"))


@pytest.mark.parametrize("bad", [
    "", "127501010190000", "12750101019000011", "127501010190000a",
    "tk_ab12cd34ef56ab78", "１２75010101900001", " 275010101900001",
])
def test_not_16_digits(bad):
    assert not nik_is_possible(bad)


def test_non_string():
    assert not nik_is_possible(1275010101900001)
    assert not nik_is_possible(None)


def test_mask():
    assert mask_nik("1275014101900001") == "1275********0001"
