"""Region names for the public page (issue 17, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jejak.api.regions import RegionNames, RegionNamesError, read_names_file
from jejak.generate import KELURAHAN_PER_KECAMATAN, REGION_PREFIX


def test_every_generated_region_has_its_kemendagri_name() -> None:
    names = RegionNames()
    assert names.name(REGION_PREFIX) == "Kota Binjai"
    for kec, kelurahan in enumerate(KELURAHAN_PER_KECAMATAN, 1):
        assert names.name(f"{REGION_PREFIX}{kec:02d}"), kec
        for k in range(kelurahan):
            assert names.name(f"{REGION_PREFIX}{kec:02d}{1001 + k}"), (kec, k)
    assert names.name("127503") == "Binjai Barat"


def test_an_operator_file_names_first_and_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "names.csv"
    f.write_text("code,name\n12.75.03,Kecamatan Contoh\n1275031001,Desa Contoh\n", encoding="utf-8")
    names = RegionNames(read_names_file(f))
    assert names.name("127503") == "Kecamatan Contoh" and names.name("1275031001") == "Desa Contoh"
    assert names.name("127501") == "Binjai Utara"  # the rest from the package
    f.write_text('{"127503": "Kec. JSON"}', encoding="utf-8")
    assert read_names_file(f) == {"127503": "Kec. JSON"}
    f.write_text("code,name\n12x,Bad\n", encoding="utf-8")
    with pytest.raises(RegionNamesError, match="JEJAK_REGION_NAMES.*not a 4, 6 or 10 digit"):
        read_names_file(f)
