"""Pure, deterministic evaluator of SPEC §3 balances and §4 anomalies.

Input facts are plain dicts carrying the SPEC §1 fields (already validated)
plus an int ``"seq"``: the fact's position in the ledger (0-based, order of
recording). Facts may be given in any order; ``seq`` is the ledger order.
Unknown extra keys are ignored. ``nik``/``kk`` values are opaque strings
(16-digit numbers or pseudonym tokens); they are only ever compared, except
through :func:`jejak.domain.nik.nik_is_possible` (or a precomputed
``"nik_possible"`` flag on ``disbursement.ordered`` facts).

Everything here is a handful of linear passes plus sorts, so a million facts
evaluate in seconds.
"""

from __future__ import annotations

import datetime as _dt
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterable

from jejak.domain.nik import nik_is_possible
from jejak.domain.periods import Period, parse_month, parse_period

__all__ = [
    "RULES",
    "Anomaly",
    "Balance",
    "Thresholds",
    "evaluate_anomalies",
    "compute_balances",
    "default_as_of",
    "instant_key",
]

RULES: tuple[str, ...] = (
    "duplicate_payout",
    "no_eligibility",
    "over_entitlement",
    "asn_recipient",
    "deceased_recipient",
    "invalid_nik",
    "nik_in_multiple_families",
    "ghost_settlement",
    "settlement_mismatch",
    "pickup_without_disbursement",
    "over_withdrawal",
    "unassigned_companion_pickup",
    "companion_concentration",
    "unclaimed_funds",
)
_RULE_RANK = {r: i for i, r in enumerate(RULES)}

_INF = float("inf")


# --------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True, slots=True)
class Thresholds:
    companion_families: int = 5
    unclaimed_days: int = 90


@dataclass(frozen=True, slots=True)
class Anomaly:
    rule: str
    primary: str
    subject: str
    facts: tuple[str, ...]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "primary": self.primary,
            "subject": self.subject,
            "facts": list(self.facts),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Balance:
    kk: str
    program: str
    ordered: int
    credited: int
    picked_up: int
    returned: int
    outstanding: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kk": self.kk,
            "program": self.program,
            "ordered": self.ordered,
            "credited": self.credited,
            "picked_up": self.picked_up,
            "returned": self.returned,
            "outstanding": self.outstanding,
        }


# --------------------------------------------------------------------------
# Time helpers

_TS_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


def instant_key(at: str) -> tuple[int, str]:
    """Totally ordered key for the instant of an RFC 3339 timestamp.

    (whole UTC epoch seconds, fraction digits right-padded) — exact even for
    sub-microsecond fractions, which ``datetime`` would truncate.
    """
    m = _TS_RE.fullmatch(at)
    if m is None:  # should not happen for validated facts; best effort
        dt = _dt.datetime.fromisoformat(at.upper().replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=_dt.timezone.utc)
        return (int(dt.timestamp() // 1), f"{dt.microsecond:06d}".ljust(18, "0"))
    date_s, time_s, frac, off = m.groups()
    off = "+00:00" if off in ("Z", "z") else off
    dt = _dt.datetime.fromisoformat(f"{date_s}T{time_s}{off}")
    secs = int(dt.timestamp())
    return (secs, (frac or "").ljust(18, "0")[:18])


def _date_str(at: str) -> str:
    """date(at): the calendar date in the timestamp's own offset, 'YYYY-MM-DD'."""
    return at[:10]


def _month_key_of_at(at: str) -> int:
    return int(at[0:4]) * 12 + int(at[5:7]) - 1


def _mk(ym: tuple[int, int]) -> int:
    return ym[0] * 12 + ym[1] - 1


def _fmt_mk(k: int) -> str:
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def default_as_of(facts: Iterable[dict]) -> _dt.date | None:
    """date(at) of the fact with the latest instant (ties: later seq); None if empty."""
    facts = facts if isinstance(facts, list) else list(facts)
    if not facts:
        return None
    max_local = max(f["at"][:10] for f in facts)
    # A later instant can have an earlier local date by at most 2 days
    # (offsets are < 24h), so only those candidates need exact instants.
    floor = (_dt.date.fromisoformat(max_local) - _dt.timedelta(days=2)).isoformat()
    best = None
    best_key = None
    for f in facts:
        at = f["at"]
        if at[:10] < floor:
            continue
        k = (instant_key(at), f["seq"])
        if best_key is None or k > best_key:
            best_key, best = k, f
    return _dt.date.fromisoformat(best["at"][:10])


# --------------------------------------------------------------------------
# Parsing caches

_period_cache: dict[str, Period | None] = {}
_month_cache: dict[str, int | None] = {}


def _period(text: Any) -> Period | None:
    try:
        return _period_cache[text]
    except (KeyError, TypeError):
        pass
    try:
        p = parse_period(text)
    except (ValueError, TypeError):
        p = None
    if isinstance(text, str) and len(_period_cache) < 100_000:
        _period_cache[text] = p
    return p


def _month(text: Any) -> int | None:
    try:
        return _month_cache[text]
    except (KeyError, TypeError):
        pass
    try:
        k = _mk(parse_month(text))
    except (ValueError, TypeError):
        k = None
    if isinstance(text, str) and len(_month_cache) < 100_000:
        _month_cache[text] = k
    return k


def _seq(f: dict) -> int:
    return f["seq"]


# --------------------------------------------------------------------------
# Indexed view of the log


class _Timeline:
    """Per (kk, program) facts with a ``from`` month, sorted by (from, seq).

    ``at(M)`` is the one in force at month M: greatest from <= M, later seq
    winning ties.
    """

    __slots__ = ("keys", "items")

    def __init__(self, entries: list[tuple[int, int, dict]]):
        entries.sort(key=lambda e: (e[0], e[1]))
        self.keys = [e[0] for e in entries]
        self.items = [e[2] for e in entries]

    def at(self, month: int) -> dict | None:
        i = bisect_right(self.keys, month) - 1
        return self.items[i] if i >= 0 else None

    def intervals(self):
        """(start, end_exclusive, fact) for every fact that is ever in force."""
        keys, items = self.keys, self.items
        n = len(keys)
        out = []
        for i in range(n):
            if i + 1 < n and keys[i + 1] == keys[i]:
                continue  # superseded at its own start by a later tie
            end = keys[i + 1] if i + 1 < n else _INF
            out.append((keys[i], end, items[i]))
        return out


def _timelines(facts: list[dict], key_field: str = "from") -> dict[tuple, _Timeline]:
    groups: dict[tuple, list] = {}
    for f in facts:
        m = _month(f.get(key_field))
        if m is None:
            continue
        groups.setdefault((f["kk"], f["program"]), []).append((m, f["seq"], f))
    return {k: _Timeline(v) for k, v in groups.items()}


class _Log:
    def __init__(self, facts: list[dict]):
        by_type: dict[str, list[dict]] = {}
        for f in facts:
            by_type.setdefault(f.get("type"), []).append(f)
        for lst in by_type.values():
            lst.sort(key=_seq)
        self.by_type = by_type

        # Orders: first by seq wins should an id ever repeat.
        orders: dict[str, dict] = {}
        for o in by_type.get("disbursement.ordered", ()):
            orders.setdefault(o["id"], o)
        self.orders = orders

        settlements: dict[str, list[dict]] = {}
        for s in by_type.get("disbursement.settled", ()):
            settlements.setdefault(s["disbursement"], []).append(s)
        self.settlements = settlements

        pickups: dict[str, list[dict]] = {}
        for p in by_type.get("pickup.recorded", ()):
            pickups.setdefault(p["disbursement"], []).append(p)
        self.pickups = pickups

        returns: dict[str, list[dict]] = {}
        for r in by_type.get("funds.returned", ()):
            returns.setdefault(r["disbursement"], []).append(r)
        self.returns = returns

        # Credited amount / failed status per order (lists are in seq order).
        self.credited: dict[str, int] = {}
        self.credited_ids: dict[str, list[str]] = {}
        self.failed_ids: dict[str, list[str]] = {}
        for oid, lst in settlements.items():
            c = 0
            cids: list[str] = []
            fids: list[str] = []
            for s in lst:
                st = s.get("status")
                if st == "credited":
                    c += s["amount"]
                    cids.append(s["id"])
                elif st == "failed":
                    fids.append(s["id"])
            self.credited[oid] = c
            if cids:
                self.credited_ids[oid] = cids
            if fids:
                self.failed_ids[oid] = fids

    def is_failed(self, oid: str) -> bool:
        return oid in self.failed_ids and oid not in self.credited_ids


# --------------------------------------------------------------------------
# Anomalies


def evaluate_anomalies(
    facts: Iterable[dict],
    as_of: _dt.date | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[Anomaly]:
    """All SPEC §4 anomalies of the log as of ``as_of`` (default: latest ``at``)."""
    facts = list(facts)
    if not facts:
        return []
    if as_of is None:
        # Default: the whole log; D is date(at) of the latest instant.
        D = default_as_of(facts)
        view = facts
    else:
        D = as_of
        d_s = as_of.isoformat()
        view = [f for f in facts if f["at"][:10] <= d_s]
    if not view:
        return []
    log = _Log(view)
    out: list[Anomaly] = []
    add = out.append

    orders = log.orders
    by_type = log.by_type
    order_list = by_type.get("disbursement.ordered", [])

    decisions = _timelines(by_type.get("eligibility.decided", []))
    assignments = _timelines(by_type.get("companion.assigned", []))

    rates: dict[tuple[str, int], dict] = {}
    for r in by_type.get("rates.set", ()):  # seq order: later wins
        rates[(r.get("program"), r.get("year"))] = r

    deaths: dict[str, dict] = {}
    for d in by_type.get("death.recorded", ()):  # seq order: earlier seq wins ties
        cur = deaths.get(d["nik"])
        if cur is None or d["date"] < cur["date"]:
            deaths[d["nik"]] = d

    asn: dict[str, list[dict]] = {}
    for a in by_type.get("asn.registered", ()):
        asn.setdefault(a["nik"], []).append(a)

    # Per-order derived data.
    order_months: dict[str, tuple[int, ...]] = {}
    for o in order_list:
        if o["id"] in order_months or orders.get(o["id"]) is not o:
            continue
        p = _period(o.get("period"))
        order_months[o["id"]] = tuple(_mk(ym) for ym in p.months) if p else ()

    # ---- duplicate_payout ------------------------------------------------
    claimed: dict[tuple, dict[int, dict]] = {}
    for o in order_list:
        oid = o["id"]
        if orders.get(oid) is not o:
            continue
        months = order_months[oid]
        cm = claimed.setdefault((o["kk"], o["program"]), {})
        prev = None
        for m in months:
            p = cm.get(m)
            if p is not None and (prev is None or p["seq"] < prev["seq"]):
                prev = p
        if prev is not None:
            common = sorted(set(months) & set(order_months[prev["id"]]))
            add(Anomaly(
                "duplicate_payout", oid, o["kk"], (oid, prev["id"]),
                f"order {oid} covers month {_fmt_mk(common[0])} already covered by "
                f"earlier non-failed order {prev['id']} ({len(common)} overlapping month(s))",
            ))
        if not log.is_failed(oid):
            for m in months:
                cm.setdefault(m, o)

    # ---- per-order rules -------------------------------------------------
    for o in order_list:
        oid = o["id"]
        if orders.get(oid) is not o:
            continue
        kk, prog, nik = o["kk"], o["program"], o["nik"]
        months = order_months[oid]
        date_s = o["at"][:10]

        # no_eligibility / over_entitlement
        if months:
            first = min(months)
            tl = decisions.get((kk, prog))
            dec = tl.at(first) if tl is not None else None
            if dec is None or dec.get("decision") != "eligible":
                if dec is None:
                    why = f"no eligibility decision in force at {_fmt_mk(first)}"
                    rel: tuple[str, ...] = (oid,)
                else:
                    why = (f"decision {dec['id']} in force at {_fmt_mk(first)} is "
                           f"{dec.get('decision')}")
                    rel = (oid, dec["id"])
                add(Anomaly("no_eligibility", oid, kk, rel, f"family not eligible for {prog}: {why}"))
            else:
                ent = _entitlement4(prog, months, dec, rates)
                if ent is not None:
                    total4, rate_ids = ent
                    amount = o["amount"]
                    if amount * 4 > total4:
                        rel_ids = _uniq((oid, dec["id"], *rate_ids))
                        add(Anomaly(
                            "over_entitlement", oid, kk, rel_ids,
                            f"amount {amount} > entitlement {_fmt_quarter(total4)}",
                        ))

        # asn_recipient
        hits = [a for a in asn.get(nik, ())
                if a["from"] <= date_s and (a.get("until") is None or date_s < a["until"])]
        if hits:
            a0 = hits[0]
            until = a0.get("until")
            add(Anomaly(
                "asn_recipient", oid, kk, _uniq((oid, *(a["id"] for a in hits))),
                f"recipient registered as civil servant from {a0['from']}"
                + (f" until {until}" if until else "")
                + f" when ordered on {date_s}",
            ))

        # deceased_recipient (order)
        d = deaths.get(nik)
        if d is not None and date_s > d["date"]:
            add(Anomaly(
                "deceased_recipient", oid, kk, (oid, d["id"]),
                f"order dated {date_s} after recipient's death on {d['date']}",
            ))

        # invalid_nik
        flag = o.get("nik_possible")
        if isinstance(flag, bool):
            bad = not flag
        else:
            bad = (isinstance(nik, str) and len(nik) == 16 and nik.isascii()
                   and nik.isdigit() and not nik_is_possible(nik))
        if bad:
            add(Anomaly("invalid_nik", oid, kk, (oid,),
                        "recipient NIK is 16 digits but not a possible NIK"))

    # ---- nik_in_multiple_families ----------------------------------------
    reps: dict[tuple[str, str], list[tuple]] = {}
    for (kk, prog), tl in decisions.items():
        for start, end, dec in tl.intervals():
            if dec.get("decision") == "eligible":
                reps.setdefault((dec["nik"], prog), []).append((start, end, kk, dec))
    for (nik, prog), ivs in reps.items():
        if len({iv[2] for iv in ivs}) < 2:
            continue
        hot = _multi_family_segments(ivs)
        if not hot:
            continue
        hot_starts = [h[0] for h in hot]
        involved = []
        for start, end, kk, dec in ivs:
            i = bisect_right(hot_starts, start) - 1
            if (i >= 0 and hot[i][1] > start) or (i + 1 < len(hot) and hot[i + 1][0] < end):
                involved.append(dec)
        involved.sort(key=_seq)
        n_kk = len({d["kk"] for d in involved})
        add(Anomaly(
            "nik_in_multiple_families", f"nik:{nik}:{prog}", nik,
            tuple(d["id"] for d in involved),
            f"representative in eligible {prog} decisions of {n_kk} families "
            f"in force at a common month (first {_fmt_mk(hot[0][0])})",
        ))

    # ---- settlements -----------------------------------------------------
    for s in by_type.get("disbursement.settled", ()):
        sid, ref = s["id"], s["disbursement"]
        o = orders.get(ref)
        if o is None:
            add(Anomaly("ghost_settlement", sid, f"disbursement:{ref}", (sid,),
                        f"{s.get('status')} settlement of {s['amount']} references no known order"))
            continue
        if s.get("status") == "credited" and s["amount"] != o["amount"]:
            add(Anomaly("settlement_mismatch", sid, o["kk"], (sid, o["id"]),
                        f"credited {s['amount']} != ordered amount {o['amount']}"))

    # ---- pickups ---------------------------------------------------------
    pickup_list = by_type.get("pickup.recorded", [])
    conc: dict[tuple[str, str, str], list[dict]] = {}
    for p in pickup_list:
        pid, ref = p["id"], p["disbursement"]
        o = orders.get(ref)
        subject = o["kk"] if o is not None else p["nik"]
        date_s = p["at"][:10]

        # deceased_recipient (pickup)
        d = deaths.get(p["nik"])
        if d is not None and date_s > d["date"]:
            add(Anomaly(
                "deceased_recipient", pid, subject,
                _uniq((pid, *((o["id"],) if o is not None else ()), d["id"])),
                f"pickup dated {date_s} after recipient's death on {d['date']}",
            ))

        # pickup_without_disbursement
        if o is None:
            add(Anomaly("pickup_without_disbursement", pid, subject, (pid,),
                        f"pickup of {p['amount']} references no known order"))
        elif log.is_failed(ref):
            add(Anomaly("pickup_without_disbursement", pid, subject,
                        _uniq((pid, ref, *log.failed_ids[ref])),
                        f"pickup of {p['amount']} on an order whose settlement failed"))

        if o is None or p.get("by") != "companion":
            continue
        comp = p.get("companion")

        # unassigned_companion_pickup
        m = _month_key_of_at(p["at"])
        tl = assignments.get((o["kk"], o["program"]))
        asg = tl.at(m) if tl is not None else None
        if asg is None or asg.get("companion") != comp:
            if asg is None:
                why = f"no companion assigned at {_fmt_mk(m)}"
                rel = (pid, ref)
            else:
                why = f"assignment {asg['id']} in force at {_fmt_mk(m)} names another companion"
                rel = (pid, ref, asg["id"])
            add(Anomaly("unassigned_companion_pickup", pid, o["kk"], _uniq(rel),
                        f"companion pickup of {p['amount']}: {why}"))

        conc.setdefault((comp, o["program"], o["period"]), []).append(p)

    # ---- over_withdrawal -------------------------------------------------
    for oid, plist in log.pickups.items():
        o = orders.get(oid)
        if o is None:
            continue
        credited = log.credited.get(oid, 0)
        limit = credited if credited > 0 else o["amount"]
        total = 0
        for p in sorted(plist, key=lambda p: (instant_key(p["at"]), p["seq"])):
            total += p["amount"]
            if total > limit:
                what = "credited" if credited > 0 else "ordered"
                add(Anomaly("over_withdrawal", p["id"], o["kk"], (p["id"], oid),
                            f"pickups total {total} > {what} amount {limit}"))

    # ---- companion_concentration -----------------------------------------
    for (comp, prog, period), plist in conc.items():
        kks = {orders[p["disbursement"]]["kk"] for p in plist}
        if len(kks) >= thresholds.companion_families:
            plist.sort(key=_seq)
            add(Anomaly(
                "companion_concentration", f"companion:{comp}:{prog}:{period}",
                f"companion:{comp}", _uniq(p["id"] for p in plist),
                f"companion collected for {len(kks)} families on {prog} {period} "
                f"(threshold {thresholds.companion_families})",
            ))

    # ---- unclaimed_funds -------------------------------------------------
    if D is not None:
        for oid, credited in log.credited.items():
            if credited <= 0:
                continue
            o = orders.get(oid)
            if o is None:
                continue
            picked = sum(p["amount"] for p in log.pickups.get(oid, ()))
            returned = sum(r["amount"] for r in log.returns.get(oid, ()))
            if picked + returned >= credited:
                continue
            creds = [s for s in log.settlements[oid] if s.get("status") == "credited"]
            first = min(creds, key=lambda s: (instant_key(s["at"]), s["seq"]))
            days = (D - _dt.date.fromisoformat(first["at"][:10])).days
            if days > thresholds.unclaimed_days:
                add(Anomaly(
                    "unclaimed_funds", oid, o["kk"],
                    _uniq((oid, first["id"], *(s["id"] for s in creds))),
                    f"{credited - picked - returned} of {credited} credited unclaimed "
                    f"for {days} days (> {thresholds.unclaimed_days})",
                ))

    # One anomaly per (rule, primary); deterministic order.
    seen: set[tuple[str, str]] = set()
    result = []
    for a in sorted(out, key=lambda a: (_RULE_RANK[a.rule], a.primary)):
        k = (a.rule, a.primary)
        if k not in seen:
            seen.add(k)
            result.append(a)
    return result


def _uniq(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _fmt_quarter(total4: int) -> str:
    if total4 % 4 == 0:
        return str(total4 // 4)
    return f"{total4 / 4:.2f}"


def _entitlement4(prog: str, months: tuple[int, ...], dec: dict,
                  rates: dict[tuple[str, int], dict]) -> tuple[int, tuple[str, ...]] | None:
    """4 × entitlement (exact integer) and the rate fact ids used; None if unjudgeable."""
    if prog == "PKH":
        stages = sorted({(m // 12, (m % 12) // 3) for m in months})
        comps = dec.get("components") or {}
        total4 = 0
        used: list[str] = []
        cache: dict[int, int] = {}
        for year, _stage in stages:
            if year not in cache:
                r = rates.get(("PKH", year))
                if r is None:
                    return None
                annual = r.get("annual") or {}
                cap = r.get("max_members")
                members = sorted(
                    ((annual.get(c, 0), n) for c, n in comps.items()),
                    key=lambda x: -x[0],
                )
                left = cap if isinstance(cap, int) else sum(n for _, n in members)
                s = 0
                for rate, n in members:
                    if left <= 0:
                        break
                    take = min(n, left)
                    s += rate * take
                    left -= take
                cache[year] = s
                used.append(r["id"])
            total4 += cache[year]
        return total4, tuple(used)
    if prog == "BPNT":
        total = 0
        used = []
        for m in months:
            r = rates.get(("BPNT", m // 12))
            if r is None or not isinstance(r.get("monthly"), int):
                return None
            total += r["monthly"]
            if r["id"] not in used:
                used.append(r["id"])
        return total * 4, tuple(used)
    return None


def _multi_family_segments(ivs: list[tuple]) -> list[tuple[float, float]]:
    """Month segments [a, b) where >= 2 distinct kk have an interval in force."""
    events: list[tuple[float, int, str]] = []
    for start, end, kk, _ in ivs:
        events.append((start, 1, kk))
        if end != _INF:
            events.append((end, -1, kk))
    events.sort(key=lambda e: (e[0], e[1]))  # ends before starts at the same month
    active: dict[str, int] = {}
    distinct = 0
    segs: list[tuple[float, float]] = []
    seg_start = None
    i, n = 0, len(events)
    while i < n:
        t = events[i][0]
        while i < n and events[i][0] == t:
            _, delta, kk = events[i]
            c = active.get(kk, 0)
            c2 = c + delta
            if c == 0 and c2 > 0:
                distinct += 1
            elif c > 0 and c2 == 0:
                distinct -= 1
            active[kk] = c2
            i += 1
        if distinct >= 2 and seg_start is None:
            seg_start = t
        elif distinct < 2 and seg_start is not None:
            segs.append((seg_start, t))
            seg_start = None
    if seg_start is not None:
        segs.append((seg_start, _INF))
    return segs


# --------------------------------------------------------------------------
# Balances


def compute_balances(facts: Iterable[dict], kk: str | None = None) -> list[Balance]:
    """SPEC §3 balances over the whole log, one per (kk, program); optional kk filter."""
    orders: dict[str, tuple[int, dict]] = {}
    rest: list[dict] = []
    for f in facts:
        t = f.get("type")
        if t == "disbursement.ordered":
            cur = orders.get(f["id"])
            if cur is None or f["seq"] < cur[0]:
                orders[f["id"]] = (f["seq"], f)
        elif t in ("disbursement.settled", "pickup.recorded", "funds.returned"):
            rest.append(f)

    acc: dict[tuple[str, str], list[int]] = {}
    for _, o in orders.values():
        if kk is not None and o["kk"] != kk:
            continue
        a = acc.setdefault((o["kk"], o["program"]), [0, 0, 0, 0])
        a[0] += o["amount"]
    for f in rest:
        entry = orders.get(f["disbursement"])
        if entry is None:
            continue
        o = entry[1]
        if kk is not None and o["kk"] != kk:
            continue
        a = acc[(o["kk"], o["program"])]
        t = f["type"]
        if t == "disbursement.settled":
            if f.get("status") == "credited":
                a[1] += f["amount"]
        elif t == "pickup.recorded":
            a[2] += f["amount"]
        else:
            a[3] += f["amount"]
    return [
        Balance(k, p, a[0], a[1], a[2], a[3], a[1] - a[2] - a[3])
        for (k, p), a in sorted(acc.items())
    ]
