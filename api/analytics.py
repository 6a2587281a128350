"""Anomalies with context, and privacy-preserving aggregates, from the fact index.

Works on protected facts (tokens only). Results are cached per log size, so a
burst of requests after one ingest computes them once.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from jejak.api.deps import ApiState
from jejak.api.roles import fact_channel
from jejak.domain.periods import parse_period
from jejak.projections.engine import RULES, evaluate_anomalies
from jejak.projections.readmodels import load_fact_rows

MIN_FAMILIES = 5
LEVELS = {"kota": 4, "kecamatan": 6, "desa": 10}


@dataclass
class FactView:
    facts: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    orders: dict[str, dict[str, Any]]
    region_of: dict[str, str]  # kk token -> region of its latest eligibility decision


def fact_view(state: ApiState, size: int) -> FactView:
    def compute() -> FactView:
        facts = load_fact_rows(state.store)
        by_id = {f["id"]: f for f in facts}
        orders = {f["id"]: f for f in facts if f["type"] == "disbursement.ordered"}
        region_of: dict[str, str] = {}
        for f in facts:  # log order: the latest decision wins
            if f["type"] == "eligibility.decided" and isinstance(f.get("region"), str):
                region_of[f["kk"]] = f["region"]
        view = FactView(facts, by_id, orders, region_of)
        # A million long-lived dicts: without this every full collection walks
        # them again (pauses of hundreds of ms in every request's tail).
        # Frozen objects are still freed by reference counting when replaced.
        gc.freeze()
        return view

    return state.cached("facts", size, compute)


def raw_anomalies(state: ApiState, size: int, as_of: date | None) -> list[dict[str, Any]]:
    if as_of is None:
        # The default list: the incrementally kept read model, not a full evaluation.
        return state.cached(("anomalies", None), size, lambda: state.reports.anomalies(reveal=False))
    view = fact_view(state, size)
    return state.cached(
        ("anomalies", as_of), size,
        lambda: [a.to_dict() for a in evaluate_anomalies(view.facts, as_of, state.reports.thresholds)],
    )


def order_of(anomaly: dict[str, Any], view: FactView) -> Optional[dict[str, Any]]:
    """The order an anomaly is about, if it is about one."""
    for fid in (anomaly["primary"], *anomaly["facts"]):
        fact = view.by_id.get(fid)
        if fact is None:
            continue
        if fact["type"] == "disbursement.ordered":
            return fact
        ref = fact.get("disbursement")
        if isinstance(ref, str) and ref in view.orders:
            return view.orders[ref]
    return None


def context_of(anomaly: dict[str, Any], view: FactView) -> dict[str, Optional[str]]:
    order = order_of(anomaly, view)
    if order is not None:
        return {"program": order.get("program"), "period": order.get("period"), "region": view.region_of.get(order["kk"])}
    program = region = None
    for fid in anomaly["facts"]:
        fact = view.by_id.get(fid) or {}
        program = program or fact.get("program")
        region = region or fact.get("region") or view.region_of.get(fact.get("kk") or "")
    return {"program": program, "period": None, "region": region}


def tokens_of(anomaly: dict[str, Any], view: FactView) -> set[str]:
    """Every family or person token an anomaly touches (its text and its facts)."""
    text = " ".join((anomaly["primary"], anomaly["subject"], anomaly["detail"]))
    tokens = {part for part in text.replace(":", " ").replace(",", " ").split() if part.startswith("tk1_")}
    for fid in anomaly["facts"]:
        fact = view.by_id.get(fid) or {}
        tokens.update(v for k in ("kk", "nik") if isinstance(v := fact.get(k), str))
        ref = fact.get("disbursement")
        if isinstance(ref, str) and ref in view.orders:
            tokens.update(v for k in ("kk", "nik") if isinstance(v := view.orders[ref].get(k), str))
    return tokens


def anomaly_channel(anomaly: dict[str, Any], view: FactView) -> Optional[str]:
    """The payment channel an anomaly is about: its order's, else its primary fact's (a ghost
    settlement's own); None when it concerns no payment of a known channel."""
    order = order_of(anomaly, view)
    if order is not None:
        return fact_channel(order, view.orders)
    primary = view.by_id.get(anomaly["primary"])
    return None if primary is None else fact_channel(primary, view.orders)


def channel_balances(view: FactView, channel: str, kk_token: Optional[str] = None) -> list[dict[str, Any]]:
    """SPEC §3 balances counting only the orders paid through `channel` (a reconciler's view)."""
    money = money_by_order(view)
    sums: dict[tuple[str, str], list[int]] = {}
    for oid, order in view.orders.items():
        if order.get("channel") != channel or kk_token is not None and order["kk"] != kk_token:
            continue
        s = sums.setdefault((order["kk"], order["program"]), [0, 0, 0, 0])
        credited, collected, returned = money.get(oid, (0, 0, 0))
        s[0] += order["amount"]
        s[1] += credited
        s[2] += collected
        s[3] += returned
    return [{"kk": kk, "program": program, "ordered": o, "credited": c, "picked_up": p, "returned": r,
             "outstanding": c - p - r} for (kk, program), (o, c, p, r) in sums.items()]


def period_key(text: str | None) -> tuple:
    if text is None:
        return ((9999, 99), "")
    try:
        return (parse_period(text).first, text)
    except ValueError:
        return ((9999, 99), text)


# ------------------------------------------------------------------ aggregates


@dataclass
class Cell:
    families: set[str] = field(default_factory=set)
    orders: int = 0
    ordered: int = 0
    credited: int = 0
    collected: int = 0
    returned: int = 0
    anomalies: Counter = field(default_factory=Counter)

    @property
    def units(self) -> set[str]:
        """What small-cell suppression counts: families."""
        return self.families


class Counted(Protocol):
    """A cell that small-cell suppression can judge: the set of units it counts."""

    @property
    def units(self) -> set[str]: ...


Key = tuple[Optional[str], str, Optional[str]]


def money_by_order(view: FactView) -> dict[str, list[int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for f in view.facts:
        ref = f.get("disbursement")
        if not isinstance(ref, str):
            continue
        if f["type"] == "disbursement.settled" and f.get("status") == "credited":
            sums[ref][0] += f["amount"]
        elif f["type"] == "pickup.recorded":
            sums[ref][1] += f["amount"]
        elif f["type"] == "funds.returned":
            sums[ref][2] += f["amount"]
    return sums


def cells(state: ApiState, size: int, level: str) -> dict[tuple[Optional[str], str, str], Cell]:
    def compute() -> dict[tuple[Optional[str], str, str], Cell]:
        view = fact_view(state, size)
        digits = LEVELS[level]
        money = money_by_order(view)
        out: dict[tuple[Optional[str], str, str], Cell] = defaultdict(Cell)
        key_of_order: dict[str, tuple[Optional[str], str, str]] = {}
        for oid, order in view.orders.items():
            region = view.region_of.get(order["kk"])
            key = (region[:digits] if region else None, order["program"], order["period"])
            key_of_order[oid] = key
            cell = out[key]
            cell.families.add(order["kk"])
            cell.orders += 1
            cell.ordered += order["amount"]
            credited, collected, returned = money.get(oid, (0, 0, 0))
            cell.credited += credited
            cell.collected += collected
            cell.returned += returned
        for anomaly in raw_anomalies(state, size, None):
            order = order_of(anomaly, view)
            if order is not None:
                out[key_of_order[order["id"]]].anomalies[anomaly["rule"]] += 1
        return dict(out)

    return state.cached(("cells", level), size, compute)


#: Each level's parent: kota cells add up to the summary's program totals.
PARENT_DIGITS = {"kota": None, "kecamatan": 4, "desa": 6}


def hidden_cells(state: ApiState, size: int) -> dict[str, set[tuple[Optional[str], str, str]]]:
    """The cells not to publish, per level (see :func:`suppress`)."""
    return state.cached(("hidden",), size, lambda: suppress_levels(lambda level: cells(state, size, level)))


def suppress_levels(cells_of: Callable[[str], Mapping[Key, Counted]]) -> dict[str, set[Key]]:
    """:func:`suppress` at every level, parents first (a hidden parent makes one child hide)."""
    hidden: dict[str, set[Key]] = {}
    parent_hidden: set = set()
    for level in ("kota", "kecamatan", "desa"):
        hidden[level] = suppress(cells_of(level), PARENT_DIGITS[level], parent_hidden)
        parent_hidden = hidden[level]
    return hidden


def suppress(level_cells: Mapping[Key, Counted], parent_digits: Optional[int], parent_hidden: set) -> set[Key]:
    """Small-cell suppression that differencing cannot undo, hiding as little as it can.

    Units are what a cell counts (`Cell`: families; complaint cells: complaints).
    Primary: a cell of fewer than MIN_FAMILIES units. A published parent
    minus its published children gives the sum of its hidden children, so the
    hidden children of one parent must together hold at least MIN_FAMILIES
    families: the smallest others are hidden with them until they do
    (complementary suppression). Under a hidden parent, publishing every child
    would give the parent back: at least one child, the smallest, is hidden.
    Kota cells (`parent_digits` None) have no published parent that adds them
    up (the summary's totals count published kota cells only), so only small
    ones are hidden there and no large period leaves the city chart."""
    def parent(key: tuple[Optional[str], str, str]) -> Any:
        region, program, period = key
        return (region[:parent_digits] if region else None, program, period)

    def size(key: tuple[Optional[str], str, str]) -> int:
        return len(level_cells[key].units)

    if parent_digits is None:
        return {key for key in level_cells if size(key) < MIN_FAMILIES}
    groups: dict[Any, list[tuple[Optional[str], str, str]]] = defaultdict(list)
    for key in level_cells:
        groups[parent(key)].append(key)
    hidden: set[tuple[Optional[str], str, str]] = set()
    for group, keys in groups.items():
        must_hide_one = group in parent_hidden
        here = {k for k in keys if size(k) < MIN_FAMILIES}
        units = set().union(*(level_cells[k].units for k in here))
        rest = sorted((k for k in keys if k not in here), key=lambda k: (size(k), k[0] or "", k[1], period_key(k[2])))
        for key in rest:
            if (here or not must_hide_one) and (not here or len(units) >= MIN_FAMILIES):
                break
            here.add(key)
            units |= level_cells[key].units
        hidden |= here
    return hidden


def suppressed_because(cell: Counted) -> str:
    """Why a hidden cell is hidden: `small` (fewer than MIN_FAMILIES units) or
    `protects_another` (hidden so that a small cell cannot be worked out by subtraction)."""
    return "small" if len(cell.units) < MIN_FAMILIES else "protects_another"


def anomaly_counts(state: ApiState, size: int) -> dict[str, int]:
    counts = Counter(a["rule"] for a in raw_anomalies(state, size, None))
    return {rule: counts.get(rule, 0) for rule in RULES}


def program_totals(state: ApiState, size: int) -> dict[str, Cell]:
    """Per program, the sum of its published kota cells (a hidden one is left
    out, so that the totals minus the published cells reveal nothing)."""
    hidden = hidden_cells(state, size)["kota"]
    out: dict[str, Cell] = defaultdict(Cell)
    for key, cell in cells(state, size, "kota").items():
        if key in hidden:
            continue
        total = out[key[1]]
        total.families |= cell.families
        total.orders += cell.orders
        total.ordered += cell.ordered
        total.credited += cell.credited
        total.collected += cell.collected
        total.returned += cell.returned
    return dict(out)


def hidden_kota_cells(state: ApiState, size: int) -> dict[str, int]:
    """Per program, how many of its kota cells the totals leave out."""
    return dict(Counter(program for (_r, program, _p) in hidden_cells(state, size)["kota"]))


def regions_with_families(state: ApiState, size: int, level: str = "kecamatan") -> list[str]:
    families: dict[str, set[str]] = defaultdict(set)
    for (region, _program, _period), cell in cells(state, size, level).items():
        if region is not None:
            families[region] |= cell.families
    return sorted(r for r, fams in families.items() if len(fams) >= MIN_FAMILIES)


def periods(state: ApiState, size: int) -> list[str]:
    seen: Iterable[str] = {period for (_r, _p, period) in cells(state, size, "kota")}
    return sorted(seen, key=period_key)
