"""Planted SPEC v2 irregularities of `jejak generate --plant`: register
listings (§5) and complaints (§6), each rule fired at least twice, beside
near-misses that must not fire.

Chosen families are clean ones (no v1 scenario, no regular companion
pickups), picked with their own random stream, so the v1 facts and their
expectations are the same bytes as without this module. Its facts come in
three places of the stream: listings after January's BKN records, complaints
and resolutions on day 28 of some months (after the month's returns), and a
last resolution on 12 January of the next year, which fixes the default as-of
date (complaint_overdue is exact to the day).

| role | facts | expected |
|---|---|---|
| ``barred`` | tni_polri from May 1 | barred_recipient on orders from May |
| ``asn_barred`` | asn (register.listed) until Jul 1, perangkat_desa | asn_recipient before July, barred_recipient |
| ``flagged`` | pemilik_mobil (from last year), listrik_nonsubsidi from Mar 1 | flagged_recipient from March |
| ``flagged_until`` | pengurus_badan_usaha, upah_di_atas_ump until Sep 1 | flagged_recipient before September |
| ``near_twice`` | guru_sertifikasi twice | nothing (one register) |
| ``near_never`` | pendamping until = from; tni_polri ended 2 Jan | nothing |
| ``near_barred`` | upah_di_atas_ump + pendamping | barred_recipient only (barred is no indicator) |

Complaints: not_received about a T1 order with a pickup (disputed, then
rejected: still disputed) and about the planted failed B07 order with a pickup
(disputed); near-misses about the unpicked unclaimed_1 order, an unknown order
(referred) and a wrong_amount one. Pungli complaints naming four companions:
001 (upheld, partially upheld, open: fires), 002 (four, one rejected: fires),
003 (one rejected, plus an `other` one) and 004 (one withdrawn): not. Two
resolutions of nothing filed (one names an order): unknown_complaint; one
dated before its complaint: not. Open complaints 15 and 14 days before the
as-of date: only the first is overdue (with every older open one).
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import TYPE_CHECKING, Iterator

from jejak.domain.facts import BARRED_REGISTERS, INDICATOR_REGISTERS

if TYPE_CHECKING:  # pragma: no cover
    from jejak.generate import Generation

#: role -> [(register, from, until)] with dates relative to the year (Y, Y-1)
_LISTINGS = {
    "barred": [("tni_polri", "Y-05-01", None)],
    "asn_barred": [("asn", "Y-01-01", "Y-07-01"), ("perangkat_desa", "P-03-01", None)],
    "flagged": [("pemilik_mobil", "P-06-01", None), ("listrik_nonsubsidi", "Y-03-01", None)],
    "flagged_until": [("pengurus_badan_usaha", "P-01-01", "Y-09-01"), ("upah_di_atas_ump", "Y-01-01", "Y-09-01")],
    "near_twice": [("guru_sertifikasi", "P-01-01", None), ("guru_sertifikasi", "Y-02-01", None)],
    "near_never": [("pendamping", "Y-06-01", "Y-06-01"), ("tni_polri", "P-01-01", "Y-01-02")],
    "near_barred": [("upah_di_atas_ump", "P-01-01", None), ("pendamping", "Y-01-01", None)],
}
_HOLDERS = {"asn": "bkn", "tni_polri": "babinsa", "pendamping": "kemensos-sdm", "perangkat_desa": "kemendagri",
            "guru_sertifikasi": "kemendikbud", "pengurus_badan_usaha": "ahu", "upah_di_atas_ump": "bpjs-tk",
            "listrik_nonsubsidi": "pln", "pemilik_mobil": "samsat"}
SRC_DINSOS = {"kind": "dinsos", "id": "dinsos-1275"}
OVERDUE_DAYS = 14


class V2Plan:
    def __init__(self, g: "Generation", taken: set[int]) -> None:
        self.g = g
        self.y = g.year
        self.r = random.Random(f"jejak-plant-v2:{g.seed}:{g.n}")
        self.taken = taken
        self.family: dict[str, int] = {role: self._clean_family() for role in _LISTINGS}
        self.listed: dict[int, list[tuple[str, str, str | None]]] = {
            self.family[role]: [(reg, self._date(f), self._date(u) if u else None) for reg, f, u in rows]
            for role, rows in _LISTINGS.items()}
        self.complaints: dict[str, str] = {}   # complaint id -> date filed
        self.pungli: dict[str, list[str]] = {}  # companion -> its pungli complaints
        self.resolved: set[str] = set()
        self._k = 0
        self.as_of = f"{self.y + 1}-01-12"

    def _clean_family(self, ok=lambda i: True) -> int:
        from jejak.generate import BLOCK, REGULAR_COMPANION_POS

        while True:
            i = self.r.randrange(self.g.n)
            if i % BLOCK not in REGULAR_COMPANION_POS and i not in self.taken and i not in self.g.sc and ok(i):
                self.taken.add(i)
                return i

    def _date(self, rel: str) -> str:
        return rel.replace("Y", str(self.y), 1).replace("P", str(self.y - 1), 1)

    # ------------------------------------------------------------ registers
    def listings(self) -> Iterator[dict]:
        """All listings, on 20 January (after BKN's records of the 15th)."""
        k = 0
        for i in sorted(self.listed):
            for reg, frm, until in self.listed[i]:
                k += 1
                f = {"id": f"registry:{_HOLDERS[reg]}:{self.y}-01:{k:06d}", "type": "register.listed",
                     "at": f"{self.y}-01-20T09:{k % 60:02d}:00+07:00",
                     "source": {"kind": "registry", "id": _HOLDERS[reg]},
                     "register": reg, "nik": self.g.nik(i), "from": frm}
                if until:
                    f["until"] = until
                yield f

    def order_checks(self, i: int, order: dict) -> None:
        """The register rules an order of a listed family fires (SPEC v2 §5)."""
        rows = self.listed.get(i)
        if not rows:
            return
        day = order["at"][:10]
        hits = {reg for reg, frm, until in rows if frm <= day and (until is None or day < until)}
        if "asn" in hits:
            self.g._expect("asn_recipient", order["id"])
        if hits & (BARRED_REGISTERS - {"asn"}):
            self.g._expect("barred_recipient", order["id"])
        if len(hits & INDICATOR_REGISTERS) >= 2:
            self.g._expect("flagged_recipient", order["id"])

    # ------------------------------------------------------------ complaints
    def _complaint(self, month: int, day: int, channel: str, category: str, *, i: int | None = None,
                   order: str | None = None, companion: str | None = None, text: str | None = None,
                   cid: str | None = None) -> dict:
        self._k += 1
        cid = cid or f"{channel}:1275:{self.y}-{month:02d}:{self._k:06d}"
        g = self.g
        f = {"id": cid, "type": "complaint.filed",
             "at": f"{self.y}-{month:02d}-{day:02d}T10:{len(self.complaints) % 60:02d}:00+07:00",
             "source": {"kind": "public", "id": f"{channel}-1275"}, "channel": channel, "category": category,
             "region": g._region(i) if i is not None else "1275011001"}
        if i is not None:
            f["kk"], f["nik"] = g._kk(i), g.nik(i)
        if order is not None:
            f["disbursement"] = order
        if companion is not None:
            f["companion"] = companion
            if category == "pungli":
                self.pungli.setdefault(companion, []).append(cid)
        if text is not None:
            f["text"] = text
        self.complaints[cid] = f["at"][:10]
        return f

    def _resolution(self, complaint: str, outcome: str, at: str) -> dict:
        self._k += 1
        self.resolved.add(complaint)
        return {"id": f"dinsos:1275:pengaduan:{self._k:06d}", "type": "complaint.resolved", "at": at,
                "source": SRC_DINSOS, "complaint": complaint, "outcome": outcome,
                "text": "hasil verifikasi lapangan"}

    def month_facts(self, month: int, rd) -> Iterator[dict]:
        """Complaints and resolutions on day 28 of `month` (after its round's pickups and
        its returns); `rd` is the round of the month, its per-family state still in place."""
        from jejak.generate import S_OK

        g, y = self.g, self.y
        at = f"{y}-{month:02d}-28T15:00:00+07:00"
        early = f"slrt:1275:{y}-05:000900"
        if month == 3:   # round T1 just paid
            i = self._clean_family(lambda i: g.st[i] == S_OK and g.p1[i] > 0)
            self.disputed_order = g._order_id(rd, i)
            c = self._complaint(3, 28, "cekbansos", "not_received", i=i, order=self.disputed_order,
                                text="bantuan tahap 1 belum diterima")
            self.disputed = c["id"]
            g._expect("disputed_pickup", c["id"])   # someone collected what the family never got
            yield c
            w = self._clean_family(lambda i: g.st[i] == S_OK and g.p1[i] > 0)
            yield self._complaint(3, 28, "slrt", "wrong_amount", i=w, order=g._order_id(rd, w))  # not not_received
            u = _scenario(g, "unclaimed_1")   # near-miss: the order nobody picked up
            yield self._complaint(3, 28, "lapor", "not_received", i=u, order=g._order_id(rd, u))
            ghost = self._complaint(3, 28, "walk_in", "not_received", order=f"kemensos:ord:{y}-T1:999999")
            yield ghost   # near-miss: no such order
            yield self._resolution(ghost["id"], "referred", at)   # referred closes it
        elif month == 4:
            yield self._resolution(self.disputed, "rejected", at)   # disputes whatever the outcome
            yield self._resolution(early, "upheld", at)   # dated before its complaint: still closes it
        elif month == 5:
            yield self._complaint(5, 28, "slrt", "exclusion_error", text="keluarga kami tidak terdaftar", cid=early)
            for comp in _COMPANIONS:
                yield self._complaint(5, 28, "pendamping", "pungli", companion=comp, text="dipotong Rp50.000")
        elif month == 6:
            for comp in _COMPANIONS:
                yield self._complaint(6, 28, "lapor", "pungli", companion=comp)
            yield self._complaint(6, 28, "lapor", "other", companion=_COMPANIONS[2])
            # unknown_complaint: a resolution of nothing filed; one naming an order id
            for ref in (f"lapor:1275:{y}-06:900000", self.disputed_order):
                r = self._resolution(ref, "withdrawn", at)
                g._expect("unknown_complaint", r["id"])
                yield r
        elif month == 8:   # round B07: the planted failed order with a pickup (pwd_failed)
            p = _scenario(g, "pwd_failed")
            c = self._complaint(8, 28, "cekbansos", "not_received", i=p, order=g._order_id(rd, p))
            g._expect("disputed_pickup", c["id"])   # a failed order's pickup disputes too
            yield c
        elif month == 9:
            for comp in _COMPANIONS:
                yield self._complaint(9, 28, "slrt", "pungli", companion=comp)
            a, b, c, d = (self.pungli[comp] for comp in _COMPANIONS)
            yield self._resolution(a[0], "upheld", at)             # a: upheld, partially upheld, open
            yield self._resolution(a[1], "partially_upheld", at)
            yield self._resolution(c[0], "rejected", at)           # c: 2 count (and one 'other')
            yield self._resolution(d[0], "withdrawn", at)          # d: 2 count
            g._expect("companion_complaints", f"companion:{_COMPANIONS[0]}")
        elif month == 10:
            yield self._complaint(10, 28, "slrt", "pungli", companion=_COMPANIONS[1])
            yield self._resolution(self.pungli[_COMPANIONS[1]][1], "rejected", at)   # b: 3 of 4 count
            g._expect("companion_complaints", f"companion:{_COMPANIONS[1]}")
        elif month == 12:
            # 15 and 14 days before the as-of date (12 January)
            yield self._complaint(12, 28, "lapor", "wrong_amount", text="kurang Rp100.000")
            yield self._complaint(12, 29, "lapor", "other")

    def final_facts(self) -> Iterator[dict]:
        """The last fact (it sets the default as-of date) closes the oldest open complaint;
        every other complaint still open more than 14 days then is overdue."""
        oldest = min((cid for cid in self.complaints if cid not in self.resolved),
                     key=lambda c: (self.complaints[c], c))
        yield self._resolution(oldest, "upheld", f"{self.as_of}T10:00:00+07:00")
        as_of = _dt.date.fromisoformat(self.as_of)
        for cid, day in self.complaints.items():
            if cid not in self.resolved and (as_of - _dt.date.fromisoformat(day)).days > OVERDUE_DAYS:
                self.g._expect("complaint_overdue", cid)


_COMPANIONS = ("pdp-1275-001", "pdp-1275-002", "pdp-1275-003", "pdp-1275-004")


def _scenario(g: "Generation", name: str) -> int:
    return next(i for i, sc in g.sc.items() if sc == name)
