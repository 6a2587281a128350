"""Deterministic generator of realistic SPEC §1 facts for one kota (Kota Binjai, code 1275).

``generate(families, seed)`` yields fact dicts lazily, in recording order (the
``at`` timestamps are non-decreasing, save for a few facts of one family that
share a timestamp). The outer loop runs over time (month → stage), the inner
loop over families, so nothing but a few bytes of per-family state is kept:
the output can be streamed to a file of any size (:func:`write_files`).

A year of activity (default 2024) is generated:

* January: ``rates.set`` (PKH, BPNT), ``eligibility.decided`` for every family
  and program, ``companion.assigned`` for every PKH family (one pendamping per
  block of 100 consecutive families ≈ 60 PKH families, all in one kecamatan);
  BKN records of a few former civil servants (``until`` in the past).
* Registry updates on the first day of later months: families joining
  (``from`` April or July), families graduating (revoked from July),
  component changes at the new school year (July).
* Payment rounds: BPNT ``YYYY-01/YYYY-02`` … ``YYYY-11/YYYY-12`` (Feb, Apr,
  Jun, Aug, Oct, Dec, Rp400,000), PKH ``YYYY-T1`` … ``YYYY-T4`` (Mar, May,
  Sep, Nov, exactly the entitlement). Each round: orders (kemensos), bank/Pos
  settlements (~2% failed → re-order with a new id after the failure),
  pickups in one or two parts (by recipient, family, or for a few elderly or
  disabled PKH recipients by their own pendamping, at most 3 per pendamping),
  a few partial pickups whose remainder is returned two months later (rounds
  of November/December may stay outstanding: they are < 90 days old).

Clean data (``plant=False``) triggers no SPEC §4 anomaly. With ``plant=True``
a deterministic subset of 38 families (28 scenarios + two groups of 5
families of one pendamping) carries planted irregularities covering
every rule at least twice; :attr:`Generation.expected` lists the exact
anomalies ``{"rule", "primary"}`` (as of the latest ``at``) once the iterator
is exhausted.

Only the standard library and orjson are used.
"""

from __future__ import annotations

import datetime as _dt
import random
import sys
from array import array
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

__all__ = [
    "Generation",
    "generate",
    "planted_expectations",
    "write_files",
    "RULES",
    "PKH_ANNUAL",
    "BPNT_MONTHLY",
    "MAX_MEMBERS",
]

from jejak.projections.engine import RULES  # noqa: E402 - the SPEC §4 table order, one definition
from jejak.plant_v2 import V2Plan  # noqa: E402

COMPONENTS = ("ibu_hamil", "anak_usia_dini", "anak_sd", "anak_smp", "anak_sma",
              "disabilitas_berat", "lansia")
PKH_ANNUAL = {
    "ibu_hamil": 3_000_000,
    "anak_usia_dini": 3_000_000,
    "anak_sd": 900_000,
    "anak_smp": 1_500_000,
    "anak_sma": 2_000_000,
    "disabilitas_berat": 2_400_000,
    "lansia": 2_400_000,
}
_RATE = tuple(PKH_ANNUAL[c] for c in COMPONENTS)
MAX_MEMBERS = 4
BPNT_MONTHLY = 200_000

PROV, REG = 12, 75
REGION_PREFIX = "1275"
# Kota Binjai (Sumatera Utara), as in Kemendagri's list of region codes:
# kelurahan per kecamatan (codes 12.75.01 … 12.75.05, kelurahan 1001 …), so
# every generated region has its real name (see jejak.api.regions).
KELURAHAN_PER_KECAMATAN = (9, 7, 6, 7, 8)
N_KEC = len(KELURAHAN_PER_KECAMATAN)
BLOCK = 100                     # families per pendamping block
REGULAR_COMPANION_POS = (11, 47, 83)   # positions in a block collected by the pendamping

CHANNELS = ("BRI", "BNI", "MANDIRI", "BSI", "BTN", "POS")
_CHANNEL_CUM = (40, 60, 75, 85, 90, 100)
_BANK_SRC = {"BRI": "bri", "BNI": "bni", "MANDIRI": "mandiri", "BSI": "bsi", "BTN": "btn",
             "POS": "pos"}

SRC_KEMENSOS = {"kind": "kemensos", "id": "kemensos-pusdatin"}
SRC_DINSOS = {"kind": "dinsos", "id": "dinsos-1275"}
SRC_BKN = {"kind": "bkn", "id": "bkn-siasn"}
SRC_DUKCAPIL = {"kind": "dukcapil", "id": "dukcapil-1275"}
SRC_POS = {"kind": "pos", "id": "posind"}
_SRC_CH = {c: ({"kind": "bank", "id": _BANK_SRC[c]} if c != "POS" else SRC_POS) for c in CHANNELS}

WORK = 9 * 3600                 # working seconds a day (08:00–17:00 WIB)

# --- identifier bijections (unique NIK / KK per family index) -------------------
_BIRTH0 = _dt.date(1960, 1, 1)
_N_BIRTH = (_dt.date(2000, 1, 1) - _BIRTH0).days       # 14610 days
_M_NIK = _N_BIRTH * 999
_ISSUE0 = _dt.date(2005, 1, 1)
_N_ISSUE = (_dt.date(2024, 1, 1) - _ISSUE0).days       # 6939 days
_M_KK = _N_ISSUE * 9999
_PRIMES = (1_000_003, 1_299_709, 2_750_159, 15_485_863, 32_452_843, 49_979_687)

# flags
F_PKH, F_BPNT, F_FEMALE, F_REGULAR = 1, 2, 4, 8
# lifecycle events
E_NONE, E_JOIN4, E_JOIN7, E_REVOKE7, E_CHANGE7, E_ASN_PAST = 0, 1, 2, 3, 4, 5
# per-round order state
S_NONE, S_OK, S_FAIL = 0, 1, 2
# pickup "by"
B_RECIPIENT, B_FAMILY, B_COMPANION = 0, 1, 2
_BY = ("recipient", "family", "companion")


class _Round:
    __slots__ = ("idx", "month", "program", "period", "first", "months", "tag")

    def __init__(self, idx, month, program, period, first, months, tag):
        self.idx, self.month, self.program, self.period = idx, month, program, period
        self.first, self.months, self.tag = first, months, tag


def _rounds(year: int) -> list[_Round]:
    out = []
    spec = [(2, "B", 1), (3, "P", 1), (4, "B", 3), (5, "P", 2), (6, "B", 5),
            (8, "B", 7), (9, "P", 3), (10, "B", 9), (11, "P", 4), (12, "B", 11)]
    for k, (m, p, x) in enumerate(spec):
        if p == "B":
            period = f"{year}-{x:02d}/{year}-{x + 1:02d}"
            out.append(_Round(k, m, "BPNT", period, x, (x, x + 1), f"B{x:02d}"))
        else:
            out.append(_Round(k, m, "PKH", f"{year}-T{x}", 3 * x - 2,
                              (3 * x - 2, 3 * x - 1, 3 * x), f"T{x}"))
    return out


def _pack(counts) -> int:
    v = 0
    for k, c in enumerate(counts):
        v |= (c & 15) << (4 * k)
    return v


def _unpack(v: int) -> tuple[int, ...]:
    return tuple((v >> (4 * k)) & 15 for k in range(7))


def entitlement_quarter(counts, capped: bool = True) -> int:
    """PKH amount per tahap for component counts (SPEC §4 entitlement)."""
    members = []
    for k, c in enumerate(counts):
        members.extend([_RATE[k]] * c)
    members.sort(reverse=True)
    if capped:
        members = members[:MAX_MEMBERS]
    return sum(members) // 4


# planted scenarios: name -> (programs flags, round tag or None)
_SCENARIOS = (
    "dup_pkh", "dup_bpnt_month", "noelig_revoked", "noelig_none",
    "overent_pkh", "overent_bpnt", "asn_active", "asn_ended",
    "dead_1", "dead_2", "inv_feb31", "inv_serial0",
    "nikm_bpnt_a", "nikm_bpnt_b", "nikm_pkh_a", "nikm_pkh_b",
    "ghost_1", "ghost_2", "mismatch_1", "mismatch_2",
    "pwd_unknown", "pwd_failed", "overwd_1", "overwd_2",
    "unassigned_1", "unassigned_2", "unclaimed_1", "unclaimed_2",
)
_SC_FLAGS = {
    "dup_pkh": F_PKH | F_BPNT, "dup_bpnt_month": F_BPNT, "noelig_revoked": F_BPNT,
    "noelig_none": F_PKH, "overent_pkh": F_PKH, "overent_bpnt": F_BPNT,
    "asn_active": F_PKH | F_BPNT, "asn_ended": F_PKH | F_BPNT,
    "dead_1": F_PKH | F_BPNT, "dead_2": F_PKH | F_BPNT,
    "inv_feb31": F_BPNT, "inv_serial0": F_PKH,
    "nikm_bpnt_a": F_BPNT, "nikm_bpnt_b": F_BPNT, "nikm_pkh_a": F_PKH, "nikm_pkh_b": F_PKH,
    "ghost_1": F_BPNT, "ghost_2": F_PKH, "mismatch_1": F_BPNT, "mismatch_2": F_PKH,
    "pwd_unknown": F_PKH, "pwd_failed": F_BPNT, "overwd_1": F_BPNT, "overwd_2": F_PKH,
    "unassigned_1": F_PKH, "unassigned_2": F_PKH | F_BPNT,
    "unclaimed_1": F_PKH, "unclaimed_2": F_BPNT,
    "conc_a": F_PKH, "conc_b": F_PKH,
}
# the round in which a scenario acts (by round tag)
_SC_ROUND = {
    "dup_pkh": "T2", "dup_bpnt_month": "B03", "overent_pkh": "T1", "overent_bpnt": "B07",
    "ghost_1": "B03", "ghost_2": "T3", "mismatch_1": "B03", "mismatch_2": "T3",
    "pwd_unknown": "T3", "pwd_failed": "B07", "overwd_1": "B05", "overwd_2": "T2",
    "unassigned_1": "T2", "unassigned_2": "B05", "unclaimed_1": "T1", "unclaimed_2": "B05",
    "conc_a": "T2", "conc_b": "T3", "noelig_none": "B05",
}
MIN_PLANT_FAMILIES = 100


class Generation:
    """One generation run. Iterate :meth:`facts` (or the object itself);
    :attr:`expected` (planted anomalies, ``{"rule", "primary"}`` sorted) and
    :attr:`as_of` (latest ``at``) are filled when the iterator is exhausted."""

    def __init__(self, families: int, seed: int, plant: bool = False, year: int = 2024):
        if families < 1:
            raise ValueError("families must be >= 1")
        if plant and families < MIN_PLANT_FAMILIES:
            raise ValueError(f"plant=True needs at least {MIN_PLANT_FAMILIES} families")
        self.n = int(families)
        self.seed = int(seed)
        self.plant = bool(plant)
        self.year = int(year)
        self.expected: list[dict] = []
        self.as_of: str | None = None
        self.count = 0
        self.done = False
        self._started = False

    # -------------------------------------------------------------- public
    def __iter__(self) -> Iterator[dict]:
        return self.facts()

    def facts(self) -> Iterator[dict]:
        if self._started:
            raise RuntimeError("a Generation can be iterated once; create a new one")
        self._started = True
        return self._run()

    # -------------------------------------------------------------- setup
    def _setup(self) -> None:
        n, seed = self.n, self.seed
        self.rng = random.Random(seed)
        prng = random.Random(f"jejak-ids:{seed}")
        self._a_nik = prng.choice(_PRIMES)
        self._b_nik = prng.randrange(_M_NIK)
        self._a_kk = prng.choice(_PRIMES)
        self._b_kk = prng.randrange(_M_KK)
        self.flags = array("B", bytes(n))
        self.kel = array("B", bytes(n))
        self.chan = array("B", bytes(n))
        self.event = array("B", bytes(n))
        self.comp = array("L", [0]) * n
        self.comp2 = {}                     # i -> packed components from July
        self.events_by_month: dict[int, list[int]] = {}
        # per-round state (reused)
        self.st = array("B", bytes(n))
        self.amt = array("L", [0]) * n
        self.p1 = array("L", [0]) * n
        self.p2 = array("L", [0]) * n
        self.by = array("B", bytes(n))
        self.returns: dict[int, dict[int, int]] = {}   # round idx -> {i: amount}
        self.extras: dict[tuple[str, int], list[Callable[[str], dict]]] = {}
        self._exp: set[tuple[str, str]] = set()
        self._nik_override: dict[int, str] = {}
        self.sc: dict[int, str] = {}
        self.death: dict[int, str] = {}
        self.asn: dict[int, tuple[str, str | None]] = {}
        self.v2: V2Plan | None = None
        if self.plant:
            self._choose_planted()

    def _choose_planted(self) -> None:
        n = self.n
        r = random.Random(f"jejak-plant:{self.seed}:{n}")
        nblocks = n // BLOCK
        ba = r.randrange(nblocks)
        bb = r.randrange(nblocks) if nblocks == 1 else r.choice([b for b in range(nblocks) if b != ba])
        taken: set[int] = set()

        def pick_in_block(b: int, k: int) -> list[int]:
            pool = [b * BLOCK + j for j in range(BLOCK)
                    if j not in REGULAR_COMPANION_POS and b * BLOCK + j not in taken]
            got = sorted(r.sample(pool, k))
            taken.update(got)
            return got

        for i in pick_in_block(ba, 5):
            self.sc[i] = "conc_a"
        for i in pick_in_block(bb, 5):
            self.sc[i] = "conc_b"
        for name in _SCENARIOS:          # rejection sampling: no O(n) pool
            while True:
                i = r.randrange(n)
                if i % BLOCK not in REGULAR_COMPANION_POS and i not in taken:
                    break
            taken.add(i)
            self.sc[i] = name
        self.v2 = V2Plan(self, taken)

    # -------------------------------------------------------------- identity
    def _kec(self, i: int) -> int:
        return (i // BLOCK) % N_KEC + 1

    def companion_of(self, i: int) -> str:
        return f"pdp-1275-{i // BLOCK + 1:03d}"

    def _kk(self, i: int) -> str:
        x = (i * self._a_kk + self._b_kk) % _M_KK
        d = _ISSUE0 + _dt.timedelta(days=x // 9999)
        return f"{REGION_PREFIX}{self._kec(i):02d}{d.day:02d}{d.month:02d}{d.year % 100:02d}{x % 9999 + 1:04d}"

    def _nik_base(self, i: int, female: bool) -> str:
        x = (i * self._a_nik + self._b_nik) % _M_NIK
        d = _BIRTH0 + _dt.timedelta(days=x // 999)
        day = d.day + 40 if female else d.day
        return f"{PROV}{REG}{self._kec(i):02d}{day:02d}{d.month:02d}{d.year % 100:02d}{x % 999 + 1:04d}"

    def nik(self, i: int) -> str:
        o = self._nik_override.get(i)
        if o is not None:
            return o
        return self._nik_base(i, bool(self.flags[i] & F_FEMALE))

    def _region(self, i: int) -> str:
        return f"{REGION_PREFIX}{self._kec(i):02d}{1001 + self.kel[i]}"

    @staticmethod
    def _ser(i: int) -> str:
        return f"{i + 1:06d}"

    # -------------------------------------------------------------- time
    def _at(self, month: int, day0: int, ndays: int, i: int) -> str:
        w = ndays * WORK
        lo = i * w // self.n
        hi = (i + 1) * w // self.n
        s = lo + (self.rng.randrange(hi - lo) if hi - lo > 1 else 0)
        d, sec = divmod(s, WORK)
        h, rem = divmod(sec, 3600)
        mi, se = divmod(rem, 60)
        return f"{self.year:04d}-{month:02d}-{day0 + d:02d}T{8 + h:02d}:{mi:02d}:{se:02d}+07:00"

    # -------------------------------------------------------------- expectations
    def _expect(self, rule: str, primary: str) -> None:
        self._exp.add((rule, primary))

    def _person_checks(self, i: int, fact: dict) -> None:
        """deceased / ASN (orders and pickups) and invalid NIK (orders) of planted families."""
        day = fact["at"][:10]
        dd = self.death.get(i)
        if dd is not None and day > dd:
            self._expect("deceased_recipient", fact["id"])
        if fact["type"] == "disbursement.ordered":
            a = self.asn.get(i)
            if a is not None and a[0] <= day and (a[1] is None or day < a[1]):
                self._expect("asn_recipient", fact["id"])
            if self.sc.get(i) in ("inv_feb31", "inv_serial0"):
                self._expect("invalid_nik", fact["id"])

    # -------------------------------------------------------------- family attributes
    def _draw_family(self, i: int) -> None:
        rng = self.rng.random
        randrange = self.rng.randrange
        fl = 0
        if rng() < 0.92:
            fl |= F_FEMALE
        pkh = rng() < 0.60
        bpnt = (rng() < 0.85) if pkh else True
        u = randrange(100)
        ch = 0
        while u >= _CHANNEL_CUM[ch]:
            ch += 1
        kel = randrange(KELURAHAN_PER_KECAMATAN[self._kec(i) - 1])
        counts = self._draw_components()
        ev_u = rng()
        asn_u = rng()
        regular = (i % BLOCK) in REGULAR_COMPANION_POS
        if regular:
            pkh = True
            if not (counts[5] or counts[6]):
                counts[6 if ev_u < 0.7 else 5] = 1
        ev = E_NONE
        if not regular:
            if ev_u < 0.02:
                ev = E_JOIN4
            elif ev_u < 0.035:
                ev = E_JOIN7
            elif ev_u < 0.045:
                ev = E_REVOKE7
            elif pkh and ev_u < 0.13:
                ev = E_CHANGE7
            elif asn_u < 0.006:
                ev = E_ASN_PAST
        sc = self.sc.get(i)
        if sc is not None:
            f = _SC_FLAGS[sc]
            pkh, bpnt = bool(f & F_PKH), bool(f & F_BPNT)
            ev = E_NONE
            if sc == "overent_pkh":
                counts = [0, 1, 2, 1, 1, 0, 0]
            if sc == "inv_feb31":
                fl |= F_FEMALE
            if sc == "noelig_revoked":
                ev = E_REVOKE7
        if pkh:
            fl |= F_PKH
        if bpnt:
            fl |= F_BPNT
        if regular:
            fl |= F_REGULAR
        if ev == E_CHANGE7:
            c2 = _promote(counts)
            if c2 is None:
                ev = E_NONE
            else:
                self.comp2[i] = _pack(c2)
        self.flags[i] = fl
        self.kel[i] = kel
        self.chan[i] = ch
        self.event[i] = ev
        self.comp[i] = _pack(counts)
        if ev in (E_JOIN4, E_CHANGE7, E_REVOKE7, E_JOIN7):
            m = 4 if ev == E_JOIN4 else 7
            self.events_by_month.setdefault(m, []).append(i)
        if sc is not None:
            self._plant_identity(i, sc)

    def _draw_components(self) -> list[int]:
        rng = self.rng.random
        c = [0] * 7
        c[0] = 1 if rng() < 0.06 else 0
        c[1] = _pick(rng(), (0.55, 0.90))
        c[2] = _pick(rng(), (0.35, 0.75, 0.95))
        c[3] = _pick(rng(), (0.60, 0.93))
        c[4] = _pick(rng(), (0.65, 0.95))
        c[5] = 1 if rng() < 0.05 else 0
        c[6] = 1 if rng() < 0.10 else 0
        if not any(c):
            c[2] = 1
        return c

    def _plant_identity(self, i: int, sc: str) -> None:
        y = self.year
        if sc == "inv_feb31":
            base = self._nik_base(i, True)
            self._nik_override[i] = base[:6] + "7102" + base[10:]       # 31 February
        elif sc == "inv_serial0":
            base = self._nik_base(i, bool(self.flags[i] & F_FEMALE))
            self._nik_override[i] = base[:12] + "0000"
        elif sc in ("nikm_bpnt_b", "nikm_pkh_b"):
            a = next(j for j, s in self.sc.items() if s == sc[:-1] + "a")
            # family a may come later: its NIK only depends on its index and sex
            self._nik_override[i] = self._nik_base(a, True)
            self._nik_override.setdefault(a, self._nik_base(a, True))
            prog = "BPNT" if "bpnt" in sc else "PKH"
            self._expect("nik_in_multiple_families", f"nik:{self._nik_override[i]}:{prog}")
        elif sc in ("nikm_bpnt_a", "nikm_pkh_a"):
            self._nik_override[i] = self._nik_base(i, True)
        elif sc == "asn_active":
            self.asn[i] = (f"{y}-07-01", None)
            self.events_by_month.setdefault(7, []).append(i)
        elif sc == "asn_ended":
            self.asn[i] = (f"{y - 3}-03-01", f"{y}-04-01")
        elif sc == "dead_1":
            self.death[i] = f"{y}-06-15"
            self.events_by_month.setdefault(8, []).append(i)
        elif sc == "dead_2":
            self.death[i] = f"{y}-09-10"
            self.events_by_month.setdefault(10, []).append(i)
        elif sc == "noelig_revoked":
            pass  # registered via E_REVOKE7

    def _components(self, i: int, month: int) -> tuple[int, ...]:
        if month >= 7 and i in self.comp2:
            return _unpack(self.comp2[i])
        return _unpack(self.comp[i])

    def _eligible(self, i: int, program: str, month: int) -> bool:
        fl = self.flags[i]
        if not fl & (F_PKH if program == "PKH" else F_BPNT):
            return False
        ev = self.event[i]
        if ev == E_JOIN4:
            return month >= 4
        if ev == E_JOIN7:
            return month >= 7
        if ev == E_REVOKE7:
            return month < 7
        return True

    # -------------------------------------------------------------- fact builders
    def _decision(self, i: int, program: str, month: int, at: str, decision: str = "eligible",
                  basis: str | None = None) -> dict:
        y = self.year
        f: dict[str, Any] = {
            "id": f"dinsos:1275:elig:{y}-{month:02d}:{program}:{self._ser(i)}",
            "type": "eligibility.decided", "at": at, "source": SRC_DINSOS,
            "kk": self._kk(i), "nik": self.nik(i), "program": program, "decision": decision,
            "from": f"{y}-{month:02d}", "region": self._region(i),
        }
        if program == "PKH" and decision == "eligible":
            counts = self._components(i, month)
            f["components"] = {COMPONENTS[k]: c for k, c in enumerate(counts) if c}
        f["basis"] = basis or (f"SK Wali Kota Binjai penetapan KPM {program} {y}"
                               if month == 1 else f"hasil verifikasi SIKS-NG {y}-{month:02d}")
        return f

    def _assignment(self, i: int, month: int, at: str) -> dict:
        return {"id": f"dinsos:1275:pdp:{self.year}-{month:02d}:{self._ser(i)}",
                "type": "companion.assigned", "at": at, "source": SRC_DINSOS,
                "companion": self.companion_of(i), "kk": self._kk(i), "program": "PKH",
                "from": f"{self.year}-{month:02d}"}

    def _order_id(self, rd: _Round, i: int, suffix: str = "") -> str:
        return f"kemensos:ord:{rd.period}:{self._ser(i)}{suffix}"

    def _order(self, rd: _Round, i: int, at: str, amount: int, suffix: str = "",
               period: str | None = None, program: str | None = None) -> dict:
        period = period or rd.period
        f = {"id": f"kemensos:ord:{period}:{self._ser(i)}{suffix}",
             "type": "disbursement.ordered", "at": at, "source": SRC_KEMENSOS,
             "kk": self._kk(i), "nik": self.nik(i), "program": program or rd.program,
             "period": period, "amount": amount, "channel": CHANNELS[self.chan[i]]}
        if self.plant and i in self.sc:
            self._person_checks(i, f)
        if self.v2 is not None:
            self.v2.order_checks(i, f)
        return f

    def _settle(self, rd: _Round, i: int, at: str, order_id: str, status: str, amount: int,
                sid: str) -> dict:
        ch = CHANNELS[self.chan[i]]
        return {"id": f"{_BANK_SRC[ch]}:stl:{sid}", "type": "disbursement.settled", "at": at,
                "source": _SRC_CH[ch], "disbursement": order_id, "status": status,
                "amount": amount, "channel": ch}

    def _pickup(self, i: int, at: str, order_id: str, amount: int, by: int, pid: str,
                companion: str | None = None) -> dict:
        ch = CHANNELS[self.chan[i]]
        kind = "pos:danom" if ch == "POS" else f"{_BANK_SRC[ch]}:wd"
        f = {"id": f"{kind}:{pid}", "type": "pickup.recorded", "at": at, "source": _SRC_CH[ch],
             "disbursement": order_id, "nik": self.nik(i), "amount": amount, "by": _BY[by]}
        if by == B_COMPANION:
            f["companion"] = companion or self.companion_of(i)
        if self.plant and i in self.sc:
            self._person_checks(i, f)
        return f

    def _return(self, i: int, at: str, order_id: str, amount: int, rid: str) -> dict:
        ch = CHANNELS[self.chan[i]]
        return {"id": f"{_BANK_SRC[ch]}:ret:{rid}", "type": "funds.returned", "at": at,
                "source": _SRC_CH[ch], "disbursement": order_id, "amount": amount}

    def _add_extra(self, phase: str, i: int, fn: Callable[[str], dict]) -> None:
        self.extras.setdefault((phase, i), []).append(fn)

    def _extras(self, phase: str, i: int, at: str) -> Iterator[dict]:
        fns = self.extras.pop((phase, i), None)
        if fns:
            for fn in fns:
                yield fn(at)

    # -------------------------------------------------------------- the run
    def _emit(self, f: dict) -> dict:
        self.count += 1
        a = f["at"]
        if self.as_of is None or a > self.as_of:
            self.as_of = a
        return f

    def _run(self) -> Iterator[dict]:
        self._setup()
        emit = self._emit
        for f in self._january():
            yield emit(f)
        rounds = _rounds(self.year)
        by_month = {rd.month: rd for rd in rounds}
        for month in range(2, 13):
            for f in self._registry(month):
                yield emit(f)
            rd = by_month.get(month)
            if rd is not None:
                for f in self._round(rd):
                    yield emit(f)
            # returns for the round two months back
            back = [r for r in rounds if r.month == month - 2]
            for r in back:
                for f in self._returns(r, month):
                    yield emit(f)
            if self.v2 is not None:
                for f in self.v2.month_facts(month, rd):
                    yield emit(f)
        if self.v2 is not None:
            for f in self.v2.final_facts():
                yield emit(f)
        if self.plant:
            self._final_expectations()
        self.expected = [{"rule": r, "primary": p} for r, p in sorted(self._exp)]
        self.done = True

    def _january(self) -> Iterator[dict]:
        y = self.year
        yield {"id": f"kemensos:rates:{y}:PKH", "type": "rates.set",
               "at": f"{y}-01-02T09:00:00+07:00", "source": SRC_KEMENSOS,
               "program": "PKH", "year": y, "annual": dict(PKH_ANNUAL), "max_members": MAX_MEMBERS}
        yield {"id": f"kemensos:rates:{y}:BPNT", "type": "rates.set",
               "at": f"{y}-01-02T09:05:00+07:00", "source": SRC_KEMENSOS,
               "program": "BPNT", "year": y, "monthly": BPNT_MONTHLY}
        n = self.n
        # decisions (days 3-9); family attributes are drawn lazily here
        for i in range(n):
            self._draw_family(i)
            at = self._at(1, 3, 5, i)
            ev = self.event[i]
            if ev in (E_JOIN4, E_JOIN7):
                continue
            for prog, bit in (("PKH", F_PKH), ("BPNT", F_BPNT)):
                if self.flags[i] & bit:
                    yield self._decision(i, prog, 1, at)
        # planted: the noelig_none family has no BPNT decision at all (already so)
        # companion assignments (days 10-12)
        for i in range(n):
            if self.flags[i] & F_PKH and self.event[i] not in (E_JOIN4, E_JOIN7):
                yield self._assignment(i, 1, self._at(1, 10, 3, i))
        # BKN: former civil servants among representatives (until in the past) (day 15)
        k = 0
        for i in range(n):
            past = self.event[i] == E_ASN_PAST
            planted = i in self.asn and self.asn[i][0] < f"{y}-01-01"
            if not (past or planted):
                continue
            k += 1
            at = self._at(1, 15, 1, i)
            if planted:
                frm, until = self.asn[i]
                agency = "Pemerintah Kota Binjai"
            else:
                sy = 2005 + self.rng.randrange(10)
                frm = f"{sy}-{1 + self.rng.randrange(12):02d}-01"
                until = f"{y - 1}-{1 + self.rng.randrange(12):02d}-01"
                agency = "Pemerintah Provinsi Sumatera Utara"
            f = {"id": f"bkn:asn:{y}-01:{k:06d}", "type": "asn.registered", "at": at,
                 "source": SRC_BKN, "nik": self.nik(i), "agency": agency, "from": frm}
            if until:
                f["until"] = until
            yield f
        if self.v2 is not None:
            yield from self.v2.listings()

    def _registry(self, month: int) -> Iterator[dict]:
        lst = self.events_by_month.get(month)
        if not lst:
            return
        y = self.year
        k = 0
        for i in sorted(lst):
            at = self._at(month, 1, 1, i)
            ev = self.event[i]
            fl = self.flags[i]
            progs = [p for p, b in (("PKH", F_PKH), ("BPNT", F_BPNT)) if fl & b]
            if ev in (E_JOIN4, E_JOIN7) and ((ev == E_JOIN4) == (month == 4)):
                for p in progs:
                    yield self._decision(i, p, month, at, basis=f"usulan musyawarah kelurahan {y}")
                if fl & F_PKH:
                    yield self._assignment(i, month, at)
            elif ev == E_REVOKE7 and month == 7:
                for p in progs:
                    yield self._decision(i, p, month, at, decision="revoked",
                                         basis="graduasi sejahtera mandiri")
            elif ev == E_CHANGE7 and month == 7:
                yield self._decision(i, "PKH", month, at,
                                     basis=f"pemutakhiran komponen tahun ajaran {y}/{y + 1}")
            sc = self.sc.get(i)
            if sc == "asn_active" and month == 7:
                k += 1
                frm, _ = self.asn[i]
                yield {"id": f"bkn:asn:{y}-{month:02d}:{k:06d}", "type": "asn.registered",
                       "at": at, "source": SRC_BKN, "nik": self.nik(i),
                       "agency": "Pemerintah Kota Binjai", "from": frm}
            elif sc in ("dead_1", "dead_2"):
                k += 1
                yield {"id": f"dukcapil:1275:kematian:{y}-{month:02d}:{k:06d}",
                       "type": "death.recorded", "at": at, "source": SRC_DUKCAPIL,
                       "nik": self.nik(i), "date": self.death[i]}

    # ---------------------------------------------------------------- rounds
    def _gets_order(self, rd: _Round, i: int) -> bool:
        sc = self.sc.get(i) if self.plant else None
        if sc == "noelig_none" and rd.tag == "B05":
            return True
        if sc == "noelig_revoked":
            return rd.program == "BPNT"  # orders continue after the revocation
        return self._eligible(i, rd.program, rd.first)

    def _amount(self, rd: _Round, i: int) -> int:
        if rd.program == "BPNT":
            return BPNT_MONTHLY * len(rd.months)
        return entitlement_quarter(self._components(i, rd.first))

    def _round(self, rd: _Round) -> Iterator[dict]:
        n, m = self.n, rd.month
        rng = self.rng.random
        st, amt, p1, p2, by = self.st, self.amt, self.p1, self.p2, self.by
        late = m >= 11
        returns: dict[int, int] = {}
        self.returns[rd.idx] = returns
        sc_map = self.sc if self.plant else {}
        # ---- orders (days 3-4)
        for i in range(n):
            if not self._gets_order(rd, i):
                st[i] = S_NONE
                continue
            a = self._amount(rd, i)
            fail = rng() < 0.02
            u = rng()
            v = rng()
            regular = self.flags[i] & F_REGULAR and rd.program == "PKH"
            b = B_COMPANION if regular else (B_FAMILY if v < 0.15 else B_RECIPIENT)
            x1, x2 = a, 0
            if not regular:
                if u < 0.03:                       # partial pickup; rest returned later
                    x1 = _part(a, 0.5)
                    if not late:
                        returns[i] = a - x1
                elif late and u < 0.08:            # not (yet) picked up
                    x1 = 0
                elif not late and u < 0.035:       # never picked up, fully returned
                    x1 = 0
                    returns[i] = a
                elif u < 0.30:                     # two withdrawals
                    x1 = _part(a, 0.3 + 0.4 * v)
                    x2 = a - x1
            sc = sc_map.get(i)
            if sc is not None:
                fail = sc == "pwd_failed" and rd.tag == "B07"
                b, x1, x2 = (B_FAMILY if i in self.death else B_RECIPIENT), a, 0
                returns.pop(i, None)
            st[i] = S_FAIL if fail else S_OK
            if fail and i in returns:
                returns[i] = -returns[i]       # marker: the paid order is the re-order
            p1[i], p2[i], by[i] = x1, x2, b
            at = self._at(m, 3, 2, i)
            if sc is not None and _SC_ROUND.get(sc) == rd.tag:
                a = self._plant_round(sc, rd, i, a)
            amt[i] = a
            yield self._order(rd, i, at, a)
            yield from self._extras("ord", i, at)
        # ---- settlements (days 5-6)
        for i in range(n):
            s = st[i]
            if s == S_NONE:
                continue
            at = self._at(m, 5, 2, i)
            oid = self._order_id(rd, i)
            if s == S_FAIL:
                yield self._settle(rd, i, at, oid, "failed", amt[i], f"{rd.period}:{self._ser(i)}")
            else:
                ca = amt[i]
                sc = sc_map.get(i)
                if sc in ("mismatch_1", "mismatch_2") and _SC_ROUND[sc] == rd.tag:
                    ca = amt[i] - 50_000
                    p1[i] = ca
                    self._expect("settlement_mismatch",
                                 f"{_BANK_SRC[CHANNELS[self.chan[i]]]}:stl:{rd.period}:{self._ser(i)}")
                yield self._settle(rd, i, at, oid, "credited", ca, f"{rd.period}:{self._ser(i)}")
            yield from self._extras("stl", i, at)
        # ---- re-orders after failures (day 8) and their settlements (day 9)
        for i in range(n):
            if st[i] == S_FAIL:
                yield self._order(rd, i, self._at(m, 8, 1, i), amt[i], suffix=":r1")
        for i in range(n):
            if st[i] == S_FAIL:
                yield self._settle(rd, i, self._at(m, 9, 1, i), self._order_id(rd, i, ":r1"),
                                   "credited", amt[i], f"{rd.period}:{self._ser(i)}:r1")
        # ---- pickups (days 10-17, second part days 18-24)
        for part, (day0, nd, arr) in enumerate(((10, 8, p1), (18, 7, p2)), start=1):
            phase = f"pick{part}"
            for i in range(n):
                s = st[i]
                if s == S_NONE:
                    continue
                x = arr[i]
                key = (phase, i)
                if not x and key not in self.extras:
                    continue
                at = self._at(m, day0, nd, i)
                if x:
                    oid = self._order_id(rd, i, ":r1" if s == S_FAIL else "")
                    pid = f"{rd.period}:{self._ser(i)}{':r1' if s == S_FAIL else ''}:{part}"
                    yield self._pickup(i, at, oid, x, by[i], pid)
                yield from self._extras(phase, i, at)
        self.extras.clear()

    def _returns(self, rd: _Round, month: int) -> Iterator[dict]:
        ret = self.returns.pop(rd.idx, None)
        if not ret:
            return
        for i in sorted(ret):
            at = self._at(month, 25, 3, i)
            # the order that was paid: the re-order if the original failed
            # (st was overwritten by later rounds, so recompute from the stored marker)
            oid_suffix = ret_suffix = ""
            amount = ret[i]
            if amount < 0:      # marker: re-order
                amount = -amount
                oid_suffix = ":r1"
                ret_suffix = ":r1"
            yield self._return(i, at, self._order_id(rd, i, oid_suffix), amount,
                               f"{rd.period}:{self._ser(i)}{ret_suffix}")

    # ---------------------------------------------------------------- planting
    def _plant_round(self, sc: str, rd: _Round, i: int, a: int) -> int:
        """Apply the scenario of family i in its round; returns the order amount."""
        ser = self._ser(i)
        ch = CHANNELS[self.chan[i]]
        bank = _BANK_SRC[ch]
        wd = "pos:danom" if ch == "POS" else f"{bank}:wd"
        oid = self._order_id(rd, i)
        if sc == "dup_pkh":
            did = self._order_id(rd, i, ":s1")
            self._expect("duplicate_payout", did)
            self._add_extra("ord", i, lambda at: self._order(rd, i, at, a, suffix=":s1"))
            self._add_extra("stl", i, lambda at: self._settle(rd, i, at, did, "credited", a,
                                                              f"{rd.period}:{ser}:s1"))
            self._add_extra("pick1", i, lambda at: self._pickup(i, at, did, a, B_RECIPIENT,
                                                                f"{rd.period}:{ser}:s1:1"))
        elif sc == "dup_bpnt_month":
            per = f"{self.year}-{rd.months[1]:02d}"
            did = f"kemensos:ord:{per}:{ser}"
            self._expect("duplicate_payout", did)
            self._add_extra("ord", i, lambda at: self._order(rd, i, at, BPNT_MONTHLY, period=per))
            self._add_extra("stl", i, lambda at: self._settle(rd, i, at, did, "credited",
                                                              BPNT_MONTHLY, f"{per}:{ser}"))
            self._add_extra("pick1", i, lambda at: self._pickup(i, at, did, BPNT_MONTHLY,
                                                                B_RECIPIENT, f"{per}:{ser}:1"))
        elif sc == "noelig_none":
            self._expect("no_eligibility", oid)
        elif sc == "overent_pkh":
            a = entitlement_quarter(self._components(i, rd.first), capped=False)
            self.p1[i] = a
            self._expect("over_entitlement", oid)
        elif sc == "overent_bpnt":
            a = BPNT_MONTHLY * 3
            self.p1[i] = a
            self._expect("over_entitlement", oid)
        elif sc in ("ghost_1", "ghost_2"):
            ghost_oid = f"kemensos:ord:{rd.period}:0{ser}"
            status = "credited" if sc == "ghost_1" else "failed"
            sid = f"{rd.period}:0{ser}"
            self._expect("ghost_settlement", f"{bank}:stl:{sid}")
            self._add_extra("stl", i, lambda at: self._settle(rd, i, at, ghost_oid, status, a, sid))
        elif sc == "pwd_unknown":
            pid = f"{rd.period}:{ser}:9"
            self._expect("pickup_without_disbursement", f"{wd}:{pid}")
            unknown = f"kemensos:ord:{rd.period}:{ser}:lama"
            self._add_extra("pick1", i, lambda at: self._pickup(i, at, unknown, a, B_RECIPIENT, pid))
        elif sc == "pwd_failed":
            pid = f"{rd.period}:{ser}:f1"
            self._expect("pickup_without_disbursement", f"{wd}:{pid}")
            self._add_extra("pick1", i, lambda at: self._pickup(i, at, oid, a, B_RECIPIENT, pid))
        elif sc == "overwd_1":
            self.p1[i] = _part(a, 0.75)
            self.p2[i] = a // 2
            self._expect("over_withdrawal", f"{wd}:{rd.period}:{ser}:2")
        elif sc == "overwd_2":
            self.p1[i] = _part(a, 0.6)
            self.p2[i] = _part(a, 0.6)
            extra = f"{rd.period}:{ser}:3"
            self._expect("over_withdrawal", f"{wd}:{rd.period}:{ser}:2")
            self._expect("over_withdrawal", f"{wd}:{extra}")
            self._add_extra("pick2", i, lambda at: self._pickup(i, at, oid, 100_000, B_RECIPIENT,
                                                                extra))
        elif sc == "unassigned_1":
            other = f"pdp-1275-{i // BLOCK + 3:03d}"
            self.p1[i] = 0
            pid = f"{rd.period}:{ser}:1"
            self._expect("unassigned_companion_pickup", f"{wd}:{pid}")
            self._add_extra("pick1", i, lambda at: self._pickup(i, at, oid, a, B_COMPANION, pid,
                                                                companion=other))
        elif sc == "unassigned_2":
            self.by[i] = B_COMPANION           # its PKH pendamping collects BPNT: not assigned
            self._expect("unassigned_companion_pickup", f"{wd}:{rd.period}:{ser}:1")
        elif sc in ("conc_a", "conc_b"):
            self.by[i] = B_COMPANION
            self._expect("companion_concentration",
                         f"companion:{self.companion_of(i)}:{rd.program}:{rd.period}")
        elif sc == "unclaimed_1":
            self.p1[i] = 0
            self._expect("unclaimed_funds", oid)
        elif sc == "unclaimed_2":
            self.p1[i] = _part(a, 0.4)
            self._expect("unclaimed_funds", oid)
        return a

    def _final_expectations(self) -> None:
        # no_eligibility for the orders after the revocation of noelig_revoked
        for i, sc in self.sc.items():
            if sc == "noelig_revoked":
                for rd in _rounds(self.year):
                    if rd.program == "BPNT" and rd.first >= 7:
                        self._expect("no_eligibility", self._order_id(rd, i))


def _pick(u: float, cuts: tuple[float, ...]) -> int:
    k = 0
    for c in cuts:
        if u < c:
            return k
        k += 1
    return k


def _part(a: int, frac: float) -> int:
    """A round part of amount a (multiple of Rp10,000, 0 < part < a)."""
    x = int(a * frac) // 10_000 * 10_000
    return min(max(x, 10_000), a - 10_000) if a > 20_000 else a // 2 or 1


def _promote(counts: list[int]) -> list[int] | None:
    """New school year: one child moves up a level; None if nothing changes."""
    c = list(counts)
    if c[2]:
        c[2] -= 1; c[3] += 1                        # noqa: E702  SD -> SMP
    elif c[3]:
        c[3] -= 1; c[4] += 1                        # noqa: E702  SMP -> SMA
    elif c[1]:
        c[1] -= 1; c[2] += 1                        # noqa: E702  usia dini -> SD
    elif c[4] and sum(c) > 1:
        c[4] -= 1                                   # SMA graduate leaves
    else:
        return None
    return c


# ------------------------------------------------------------------ functional API
def generate(families: int, seed: int, plant: bool = False, year: int = 2024) -> Iterator[dict]:
    """Yield the facts of a generation lazily (see :class:`Generation` for the expectations)."""
    return Generation(families, seed, plant, year).facts()


def planted_expectations(families: int, seed: int, year: int = 2024) -> list[dict]:
    """Expected anomalies of ``generate(families, seed, plant=True, year)`` (runs it once)."""
    g = Generation(families, seed, True, year)
    for _ in g.facts():
        pass
    return g.expected


def write_files(families: int, seed: int, out_path, plant: bool = False, expected_path=None,
                progress: Callable[[int], None] | None = None, year: int = 2024) -> dict:
    """Stream a generation to ``out_path`` (JSONL; ``"-"`` = stdout) and, if given,
    the expected anomalies to ``expected_path`` (JSONL ``{"rule", "primary"}``, sorted).

    ``progress(n)`` is called with the number of facts written every 10,000 facts and
    once at the end. Returns ``{"facts", "families", "expected", "as_of"}``.
    """
    g = Generation(families, seed, plant, year)
    dumps = orjson.dumps
    nl = b"\n"
    close = False
    if str(out_path) == "-":
        fh = sys.stdout.buffer
    else:
        fh = open(Path(out_path), "wb")
        close = True
    try:
        buf: list[bytes] = []
        for k, fact in enumerate(g.facts(), start=1):
            buf.append(dumps(fact))
            if len(buf) >= 4096:
                buf.append(b"")
                fh.write(nl.join(buf))
                buf = []
            if progress is not None and k % 10_000 == 0:
                progress(k)
        if buf:
            buf.append(b"")
            fh.write(nl.join(buf))
        fh.flush()
    finally:
        if close:
            fh.close()
    if progress is not None:
        progress(g.count)
    if expected_path is not None:
        with open(Path(expected_path), "wb") as eh:
            for e in g.expected:
                eh.write(dumps(e) + nl)
    return {"facts": g.count, "families": g.n, "expected": len(g.expected), "as_of": g.as_of}
