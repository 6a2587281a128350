"""Pure, deterministic evaluator of SPEC §3 balances and §4 anomalies (with
the v2 rules of §5 registers and §6 complaints).

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
import gc
import re
from contextlib import contextmanager
from bisect import bisect_right
from operator import itemgetter
from dataclasses import dataclass
from typing import Any, Iterable

from jejak.domain.facts import BARRED_REGISTERS, INDICATOR_REGISTERS
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
    "evaluate_scope",
    "instant_key",
    "overdue_anomaly",
    "unclaimed_anomaly",
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
    # SPEC v2 §5 (asn_recipient above is fed by register.listed of `asn` too)
    "barred_recipient",
    "flagged_recipient",
    # SPEC v2 §6
    "complaint_overdue",
    "disputed_pickup",
    "companion_complaints",
    "unknown_complaint",
)
_RULE_RANK = {r: i for i, r in enumerate(RULES)}

_INF = float("inf")


# --------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True, slots=True)
class Thresholds:
    companion_families: int = 5
    unclaimed_days: int = 90
    #: SPEC v2 §6: a complaint open more than this many days is overdue.
    complaint_days: int = 14
    #: SPEC v2 §5: distinct indicator registers that flag a recipient.
    indicator_registers: int = 2
    #: SPEC v2 §6: pungli complaints (not rejected or withdrawn) naming one companion.
    companion_complaints: int = 3


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
    # The lexicographically greatest `at` carries the greatest local date.
    max_local = max(map(_get_at, facts))[:10]
    # A later instant can have an earlier local date by at most 2 days
    # (offsets are < 24h), so only those candidates need exact instants.
    # (For a 10-char date prefix, at >= floor  <=>  at[:10] >= floor.)
    floor = (_dt.date.fromisoformat(max_local) - _dt.timedelta(days=2)).isoformat()
    best = None
    best_key = None
    for f in facts:
        at = f["at"]
        if at < floor:
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


_seq = itemgetter("seq")
_get_at = itemgetter("at")


def _sort_by_seq(lst: list[dict]) -> None:
    seqs = list(map(_seq, lst))
    if seqs != sorted(seqs):
        lst.sort(key=_seq)


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


class _Single:
    """A timeline with exactly one entry (the common case)."""

    __slots__ = ("key", "item")

    def __init__(self, key: int, item: dict):
        self.key, self.item = key, item

    def at(self, month: int) -> dict | None:
        return self.item if self.key <= month else None

    def intervals(self):
        return [(self.key, _INF, self.item)]


def _timelines(facts: list[dict]) -> dict[tuple, Any]:
    groups: dict[tuple, list] = {}
    mc = _month_cache
    for f in facts:
        fr = f.get("from")
        m = mc.get(fr) if isinstance(fr, str) else None
        if m is None:
            m = _month(fr)
            if m is None:
                continue
        key = (f["kk"], f["program"])
        g = groups.get(key)
        if g is None:
            groups[key] = [(m, f["seq"], f)]
        else:
            g.append((m, f["seq"], f))
    return {k: (_Single(v[0][0], v[0][2]) if len(v) == 1 else _Timeline(v))
            for k, v in groups.items()}


_MONEY = ("disbursement.settled", "pickup.recorded", "funds.returned")


class _Log:
    def __init__(self, facts: Iterable[dict], date_limit: str | None):
        by_type: dict[str, list[dict]] = {}
        if date_limit is None:
            for f in facts:
                t = f["type"]
                lst = by_type.get(t)
                if lst is None:
                    by_type[t] = [f]
                else:
                    lst.append(f)
        else:
            for f in facts:
                if f["at"][:10] > date_limit:
                    continue
                t = f["type"]
                lst = by_type.get(t)
                if lst is None:
                    by_type[t] = [f]
                else:
                    lst.append(f)
        for lst in by_type.values():
            _sort_by_seq(lst)
        self.by_type = by_type
        self.empty = not by_type

        # Orders: first by seq wins should an id ever repeat.
        orders: dict[str, dict] = {}
        for o in by_type.get("disbursement.ordered", ()):
            if o["id"] not in orders:
                orders[o["id"]] = o
        self.orders = orders

        credited: dict[str, int] = {}
        failed: set[str] = set()
        for s in by_type.get("disbursement.settled", ()):
            st = s["status"]
            if st == "credited":
                ref = s["disbursement"]
                credited[ref] = credited.get(ref, 0) + s["amount"]
            elif st == "failed":
                failed.add(s["disbursement"])
        self.credited = credited
        self.failed = failed

        picked: dict[str, int] = {}
        for p in by_type.get("pickup.recorded", ()):
            ref = p["disbursement"]
            picked[ref] = picked.get(ref, 0) + p["amount"]
        self.picked = picked

        returned: dict[str, int] = {}
        for r in by_type.get("funds.returned", ()):
            ref = r["disbursement"]
            returned[ref] = returned.get(ref, 0) + r["amount"]
        self.returned = returned

    def collect(self, type_: str, refs: set[str]) -> dict[str, list[dict]]:
        """Facts of ``type_`` referencing one of ``refs``, per ref, in seq order."""
        out: dict[str, list[dict]] = {}
        if refs:
            for f in self.by_type.get(type_, ()):
                ref = f["disbursement"]
                if ref in refs:
                    lst = out.get(ref)
                    if lst is None:
                        out[ref] = [f]
                    else:
                        lst.append(f)
        return out

    def is_failed(self, oid: str) -> bool:
        return oid in self.failed and oid not in self.credited


# --------------------------------------------------------------------------
# Anomalies


def evaluate_anomalies(
    facts: Iterable[dict],
    as_of: _dt.date | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[Anomaly]:
    """All SPEC §4 anomalies of the log as of ``as_of`` (default: latest ``at``)."""
    with _no_gc():
        return _evaluate(facts, as_of, thresholds)


@contextmanager
def _no_gc():
    """Pause the cyclic GC: building millions of small containers otherwise
    triggers repeated full collections (this code creates no cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _evaluate(facts: Iterable[dict], as_of: _dt.date | None,
              thresholds: Thresholds, candidates: list | None = None,
              overdue_out: list | None = None) -> list[Anomaly]:
    facts = facts if isinstance(facts, list) else list(facts)
    if not facts:
        return []
    if candidates is not None:
        # Scoped evaluation (see evaluate_scope): no as-of date at all.
        D = None
        log = _Log(facts, None)
    elif as_of is None:
        # Default: the whole log; D is date(at) of the latest instant.
        D = default_as_of(facts)
        log = _Log(facts, None)
    else:
        D = as_of
        log = _Log(facts, as_of.isoformat())
    if log.empty:
        return []
    out: list[Anomaly] = []
    add = out.append

    orders = log.orders
    by_type = log.by_type
    order_list = by_type.get("disbursement.ordered", [])
    failed = log.failed
    credited = log.credited

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

    listings = _listings(by_type)

    # Unique orders in ledger order, with their month keys.
    uniq_orders: list[tuple[dict, tuple[int, ...]]] = []
    pmonths: dict[str, tuple[int, ...]] = {}
    for o in order_list:
        if orders[o["id"]] is not o:
            continue
        per = o.get("period")
        months = pmonths.get(per)
        if months is None:
            p = _period(per)
            months = tuple(_mk(ym) for ym in p.months) if p else ()
            pmonths[per] = months
        uniq_orders.append((o, months))

    # ---- duplicate_payout ------------------------------------------------
    claimed: dict[tuple, dict[int, dict]] = {}
    for o, months in uniq_orders:
        oid = o["id"]
        key = (o["kk"], o["program"])
        cm = claimed.get(key)
        if cm is None:
            cm = claimed[key] = {}
        prev = None
        for m in months:
            p = cm.get(m)
            if p is not None and (prev is None or p["seq"] < prev["seq"]):
                prev = p
        if prev is not None:
            pm = set(pmonths[prev.get("period")])
            common = [m for m in months if m in pm]
            add(Anomaly(
                "duplicate_payout", oid, o["kk"], (oid, prev["id"]),
                f"order {oid} covers month {_fmt_mk(min(common))} already covered by "
                f"earlier non-failed order {prev['id']} ({len(common)} overlapping month(s))",
            ))
        if not (oid in failed and oid not in credited):
            for m in months:
                if m not in cm:
                    cm[m] = o

    # ---- per-order rules -------------------------------------------------
    nik_ok_cache: dict[str, bool] = {}
    ent_cache: dict[tuple, Any] = {}
    for o, months in uniq_orders:
        oid = o["id"]
        kk, prog, nik = o["kk"], o["program"], o["nik"]
        date_s = o["at"][:10]

        # no_eligibility / over_entitlement
        if months:
            first = months[0]
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
                comps = dec.get("components")
                ek = (prog, months, tuple(comps.items()) if comps else None)
                ent = ent_cache.get(ek, ent_cache)
                if ent is ent_cache:
                    ent = ent_cache[ek] = _entitlement4(prog, months, dec, rates)
                if ent is not None:
                    total4, rate_ids = ent
                    amount = o["amount"]
                    if amount * 4 > total4:
                        add(Anomaly(
                            "over_entitlement", oid, kk, _uniq((oid, dec["id"], *rate_ids)),
                            f"amount {amount} > entitlement {_fmt_quarter(total4)}",
                        ))

        # asn_recipient, barred_recipient, flagged_recipient
        regs = listings.get(nik)
        if regs:
            _register_rules(add, o, kk, date_s, regs, thresholds.indicator_registers)

        # deceased_recipient (order)
        d = deaths.get(nik)
        if d is not None and date_s > d["date"]:
            add(Anomaly(
                "deceased_recipient", oid, kk, (oid, d["id"]),
                f"order dated {date_s} after recipient's death on {d['date']}",
            ))

        # invalid_nik
        flag = o.get("nik_possible")
        if flag is True:
            bad = False
        elif flag is False:
            bad = True
        else:
            bad = nik_ok_cache.get(nik)
            if bad is None:
                bad = nik_ok_cache[nik] = (
                    isinstance(nik, str) and len(nik) == 16 and nik.isascii()
                    and nik.isdigit() and not nik_is_possible(nik))
        if bad:
            add(Anomaly("invalid_nik", oid, kk, (oid,),
                        "recipient NIK is 16 digits but not a possible NIK"))

    # ---- nik_in_multiple_families ----------------------------------------
    reps: dict[tuple[str, str], list[tuple]] = {}
    for (kk, prog), tl in decisions.items():
        for start, end, dec in tl.intervals():
            if dec.get("decision") == "eligible":
                key = (dec["nik"], prog)
                lst = reps.get(key)
                if lst is None:
                    reps[key] = [(start, end, kk, dec)]
                else:
                    lst.append((start, end, kk, dec))
    for (nik, prog), ivs in reps.items():
        if len(ivs) < 2 or len({iv[2] for iv in ivs}) < 2:
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
        ref = s["disbursement"]
        o = orders.get(ref)
        if o is None:
            sid = s["id"]
            add(Anomaly("ghost_settlement", sid, f"disbursement:{ref}", (sid,),
                        f"{s.get('status')} settlement of {s['amount']} references no known order"))
        elif s["amount"] != o["amount"] and s.get("status") == "credited":
            sid = s["id"]
            add(Anomaly("settlement_mismatch", sid, o["kk"], (sid, o["id"]),
                        f"credited {s['amount']} != ordered amount {o['amount']}"))

    # ---- pickups ---------------------------------------------------------
    failed_refs = {p["disbursement"] for p in by_type.get("pickup.recorded", ())
                   if p["disbursement"] in failed} - credited.keys()
    failed_setts = log.collect("disbursement.settled", failed_refs)
    conc: dict[tuple[str, str, str], list[dict]] = {}
    for p in by_type.get("pickup.recorded", ()):
        ref = p["disbursement"]
        o = orders.get(ref)

        # deceased_recipient (pickup)
        d = deaths.get(p["nik"])
        if d is not None:
            date_s = p["at"][:10]
            if date_s > d["date"]:
                pid = p["id"]
                add(Anomaly(
                    "deceased_recipient", pid, o["kk"] if o is not None else p["nik"],
                    _uniq((pid, *((o["id"],) if o is not None else ()), d["id"])),
                    f"pickup dated {date_s} after recipient's death on {d['date']}",
                ))

        # pickup_without_disbursement
        if o is None:
            pid = p["id"]
            add(Anomaly("pickup_without_disbursement", pid, p["nik"], (pid,),
                        f"pickup of {p['amount']} references no known order"))
            continue
        if ref in failed_refs:
            pid = p["id"]
            add(Anomaly("pickup_without_disbursement", pid, o["kk"],
                        _uniq((pid, ref, *(x["id"] for x in failed_setts[ref]
                                           if x["status"] == "failed"))),
                        f"pickup of {p['amount']} on an order whose settlement failed"))

        if p.get("by") != "companion":
            continue
        comp = p.get("companion")

        # unassigned_companion_pickup
        m = _month_key_of_at(p["at"])
        tl = assignments.get((o["kk"], o["program"]))
        asg = tl.at(m) if tl is not None else None
        if asg is None or asg.get("companion") != comp:
            pid = p["id"]
            if asg is None:
                why = f"no companion assigned at {_fmt_mk(m)}"
                rel = (pid, ref)
            else:
                why = f"assignment {asg['id']} in force at {_fmt_mk(m)} names another companion"
                rel = (pid, ref, asg["id"])
            add(Anomaly("unassigned_companion_pickup", pid, o["kk"], _uniq(rel),
                        f"companion pickup of {p['amount']}: {why}"))

        key = (comp, o["program"], o["period"])
        lst = conc.get(key)
        if lst is None:
            conc[key] = [p]
        else:
            lst.append(p)

    # ---- over_withdrawal -------------------------------------------------
    picked = log.picked
    over = set()
    for oid, total in picked.items():
        o = orders.get(oid)
        if o is not None:
            c = credited.get(oid, 0)
            if total > (c if c > 0 else o["amount"]):
                over.add(oid)
    for oid, plist in sorted(log.collect("pickup.recorded", over).items()):
        o = orders[oid]
        c = credited.get(oid, 0)
        limit = c if c > 0 else o["amount"]
        what = "credited" if c > 0 else "ordered"
        total = 0
        if len(plist) > 1:
            plist = sorted(plist, key=lambda p: (instant_key(p["at"]), p["seq"]))
        for p in plist:
            total += p["amount"]
            if total > limit:
                add(Anomaly("over_withdrawal", p["id"], o["kk"], (p["id"], oid),
                            f"pickups total {total} > {what} amount {limit}"))

    # ---- companion_concentration -----------------------------------------
    need = thresholds.companion_families
    for (comp, prog, period), plist in conc.items():
        if len(plist) < need:
            continue
        kks = {orders[p["disbursement"]]["kk"] for p in plist}
        if len(kks) >= need:
            add(Anomaly(
                "companion_concentration", f"companion:{comp}:{prog}:{period}",
                f"companion:{comp}", _uniq(p["id"] for p in plist),
                f"companion collected for {len(kks)} families on {prog} {period} "
                f"(threshold {need})",
            ))

    # ---- unclaimed_funds -------------------------------------------------
    if candidates is not None:
        candidates.extend(_unclaimed_candidates(log))
    elif D is not None:
        limit_days = thresholds.unclaimed_days
        for cand in _unclaimed_candidates(log):
            a = unclaimed_anomaly(*cand, D, limit_days)
            if a is not None:
                add(a)

    # ---- complaints (SPEC v2 §6) -----------------------------------------
    overdue = _complaint_rules(add, log, thresholds)
    if candidates is not None:
        overdue_out.extend(overdue)
    elif D is not None:
        for cand in overdue:
            a = overdue_anomaly(*cand, D, thresholds.complaint_days)
            if a is not None:
                add(a)

    # One anomaly per (rule, primary); deterministic order.
    seen: set[tuple[str, str]] = set()
    result = []
    rank = _RULE_RANK
    for a in sorted(out, key=lambda a: (rank[a.rule], a.primary)):
        k = (a.rule, a.primary)
        if k not in seen:
            seen.add(k)
            result.append(a)
    return result


#: One unclaimed-funds candidate: (order id, kk, credited, picked up, returned,
#: date of the first credited settlement 'YYYY-MM-DD', fact ids).
UnclaimedCandidate = tuple


def _unclaimed_candidates(log: "_Log") -> list[UnclaimedCandidate]:
    """Known orders with credited > 0 and picked up + returned < credited.

    Whether one is an anomaly depends only on the as-of date (see
    :func:`unclaimed_anomaly`), so a read model can keep these and apply the
    date at query time.
    """
    orders, credited, picked, returned = log.orders, log.credited, log.picked, log.returned
    short = {}
    for oid, c in credited.items():
        o = orders.get(oid)
        if o is None:
            continue
        pu = picked.get(oid, 0)
        rt = returned.get(oid, 0)
        if pu + rt < c:
            short[oid] = (o, c, pu, rt)
    out = []
    for oid, lst in log.collect("disbursement.settled", set(short)).items():
        o, c, pu, rt = short[oid]
        creds = [x for x in lst if x["status"] == "credited"]
        first = creds[0] if len(creds) == 1 else min(
            creds, key=lambda x: (instant_key(x["at"]), x["seq"]))
        out.append((oid, o["kk"], c, pu, rt, first["at"][:10],
                    _uniq((oid, first["id"], *(x["id"] for x in creds)))))
    return out


def unclaimed_anomaly(oid: str, kk: str, c: int, pu: int, rt: int, first_day: str,
                      fact_ids: Iterable[str], as_of: _dt.date,
                      limit_days: int) -> Anomaly | None:
    """The unclaimed_funds anomaly of one candidate as of ``as_of``, if any."""
    days = (as_of - _dt.date.fromisoformat(first_day)).days
    if days <= limit_days:
        return None
    return Anomaly(
        "unclaimed_funds", oid, kk, tuple(fact_ids),
        f"{c - pu - rt} of {c} credited unclaimed "
        f"for {days} days (> {limit_days})",
    )


def evaluate_scope(facts: Iterable[dict], thresholds: Thresholds = Thresholds()
                   ) -> tuple[list[Anomaly], list[UnclaimedCandidate], list[OverdueCandidate]]:
    """Every rule but ``unclaimed_funds`` and ``complaint_overdue`` over
    ``facts``, plus the candidates of those two (no as-of date is involved).

    Given a subset of the log that is *closed* for some primaries (it holds
    every fact their rules look at), the anomalies of those primaries equal the
    ones of :func:`evaluate_anomalies` over the whole log; unclaimed_funds and
    complaint_overdue of any as-of follow from the candidates
    (:func:`unclaimed_anomaly`, :func:`overdue_anomaly`).
    """
    candidates: list = []
    overdue: list = []
    with _no_gc():
        found = _evaluate(facts, None, thresholds, candidates, overdue)
    return found, candidates, overdue


def _listings(by_type: dict[str, list[dict]]) -> dict[str, list[tuple[str, dict]]]:
    """nik -> its register listings (register code, fact) in ledger order; an
    ``asn.registered`` is a listing in ``asn`` (SPEC v2 §5)."""
    facts = [("asn", a) for a in by_type.get("asn.registered", ())]
    facts += [(r["register"], r) for r in by_type.get("register.listed", ())]
    if not facts:
        return {}
    facts.sort(key=lambda x: x[1]["seq"])
    out: dict[str, list[tuple[str, dict]]] = {}
    for reg, f in facts:
        out.setdefault(f["nik"], []).append((reg, f))
    return out


def _register_rules(add, o: dict, kk: str, date_s: str, regs: list[tuple[str, dict]],
                    need_indicators: int) -> None:
    """asn_recipient, barred_recipient and flagged_recipient of one order: the
    listings of its nik in force at date(order.at), from <= D < until (an
    ``until`` <= ``from`` is never in force)."""
    hits = [(reg, f) for reg, f in regs
            if f["from"] <= date_s and (f.get("until") is None or date_s < f["until"])]
    if not hits:
        return
    oid = o["id"]
    asn = [f for reg, f in hits if reg == "asn"]
    if asn:
        a0 = asn[0]
        until = a0.get("until")
        add(Anomaly(
            "asn_recipient", oid, kk, _uniq((oid, *(a["id"] for a in asn))),
            f"recipient registered as civil servant from {a0['from']}"
            + (f" until {until}" if until else "")
            + f" when ordered on {date_s}",
        ))
    for rule, kinds, need in (("barred_recipient", BARRED_REGISTERS - {"asn"}, 1),
                              ("flagged_recipient", INDICATOR_REGISTERS, need_indicators)):
        mine = [(reg, f) for reg, f in hits if reg in kinds]
        codes = sorted({reg for reg, _ in mine})
        if codes and len(codes) >= need:
            add(Anomaly(rule, oid, kk, _uniq((oid, *(f["id"] for _, f in mine))), ",".join(codes)))


#: One complaint_overdue candidate (an open complaint): (complaint id, subject,
#: date of the complaint 'YYYY-MM-DD', fact ids).
OverdueCandidate = tuple

#: Outcomes after which a pungli complaint no longer counts against the companion.
_DISMISSED = frozenset({"rejected", "withdrawn"})


def _complaint_rules(add, log: "_Log", thresholds: Thresholds) -> list[OverdueCandidate]:
    """disputed_pickup, companion_complaints and unknown_complaint (SPEC v2 §6);
    returns the complaint_overdue candidates (open complaints), whose firing
    depends only on the as-of date (:func:`overdue_anomaly`)."""
    by_type = log.by_type
    complaints: dict[str, dict] = {}
    for c in by_type.get("complaint.filed", ()):
        complaints.setdefault(c["id"], c)
    resolutions = by_type.get("complaint.resolved", ())
    if not complaints and not resolutions:
        return []
    latest: dict[str, dict] = {}  # complaint id -> its latest resolution in ledger order
    for r in resolutions:
        ref = r["complaint"]
        if ref in complaints:
            latest[ref] = r
        else:
            rid = r["id"]
            add(Anomaly("unknown_complaint", rid, f"complaint:{ref}", (rid,),
                        f"{r.get('outcome')} resolution references no filed complaint"))

    orders = log.orders
    disputed = {c["disbursement"] for c in complaints.values()
                if c.get("category") == "not_received" and c.get("disbursement") in orders}
    pickups = log.collect("pickup.recorded", disputed)
    pungli: dict[str, list[dict]] = {}
    overdue: list[OverdueCandidate] = []
    for cid, c in complaints.items():
        cday = c["at"][:10]
        category = c.get("category")
        if category == "not_received":
            ref = c.get("disbursement")
            before = [p for p in pickups.get(ref, ()) if p["at"][:10] <= cday]
            if before:
                first = min(p["at"][:10] for p in before)
                add(Anomaly(
                    "disputed_pickup", cid, orders[ref]["kk"], _uniq((cid, ref, *(p["id"] for p in before))),
                    f"complaint of {cday} says not received; {len(before)} pickup(s) of the order "
                    f"recorded on or before it (first {first})",
                ))
        r = latest.get(cid)
        if category == "pungli" and isinstance(c.get("companion"), str) and (
                r is None or r.get("outcome") not in _DISMISSED):
            pungli.setdefault(c["companion"], []).append(c)
        if r is None:
            subject = c.get("kk") if isinstance(c.get("kk"), str) else f"region:{c.get('region')}"
            overdue.append((cid, subject, cday, (cid,)))
    need = thresholds.companion_complaints
    for comp, lst in pungli.items():
        if len(lst) >= need:
            add(Anomaly("companion_complaints", f"companion:{comp}", f"companion:{comp}",
                        tuple(c["id"] for c in lst),
                        f"{len(lst)} pungli complaints name the companion (threshold {need})"))
    return overdue


def overdue_anomaly(cid: str, subject: str, filed_day: str, fact_ids: Iterable[str],
                    as_of: _dt.date, limit_days: int) -> Anomaly | None:
    """The complaint_overdue anomaly of one open complaint as of ``as_of``, if any."""
    days = (as_of - _dt.date.fromisoformat(filed_day)).days
    if days <= limit_days:
        return None
    return Anomaly("complaint_overdue", cid, subject, tuple(fact_ids),
                   f"complaint open for {days} days (> {limit_days})")


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
    with _no_gc():
        return _balances(facts, kk)


def _balances(facts: Iterable[dict], kk: str | None) -> list[Balance]:
    orders: dict[str, tuple[int, dict]] = {}
    rest: list[dict] = []
    rest_append = rest.append
    for f in facts:
        t = f["type"]
        if t == "disbursement.ordered":
            oid = f["id"]
            cur = orders.get(oid)
            if cur is None or f["seq"] < cur[0]:
                orders[oid] = (f["seq"], f)
        elif t in _MONEY:
            rest_append(f)

    acc: dict[tuple[str, str], list[int]] = {}
    by_order: dict[str, list[int]] = {}
    for oid, (_, o) in orders.items():
        okk = o["kk"]
        if kk is not None and okk != kk:
            continue
        key = (okk, o["program"])
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0, 0, 0, 0]
        a[0] += o["amount"]
        by_order[oid] = a
    for f in rest:
        a = by_order.get(f["disbursement"])
        if a is None:
            continue  # unknown order (or filtered out by kk)
        t = f["type"]
        if t == "pickup.recorded":
            a[2] += f["amount"]
        elif t == "funds.returned":
            a[3] += f["amount"]
        elif f.get("status") == "credited":
            a[1] += f["amount"]
    return [
        Balance(k, p, a[0], a[1], a[2], a[3], a[1] - a[2] - a[3])
        for (k, p), a in sorted(acc.items())
    ]
