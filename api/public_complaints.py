"""Public figures of SPEC v2: complaints per (region, category, month) and register
matches per (region, program), with the aid aggregates' small-cell suppression.

Complaint cells count **complaints** (a complaint may name no family): a cell of
fewer than MIN_FAMILIES complaints is hidden, plus complementary suppression
(:func:`analytics.suppress`). Register matches are sums of the *published* aid
cells' anomaly counts (the aid cells already publish them per period), so they
disclose nothing the aid aggregates do not: a hidden aid cell is left out and
counted in `hidden_cells`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Optional

from jejak.api import analytics
from jejak.api.complaints import complaint_rows
from jejak.api.deps import ApiState

#: the anomaly rules that say an order's recipient is on a register (SPEC v2 §5)
REGISTER_RULES = ("asn_recipient", "barred_recipient", "flagged_recipient")


@dataclass
class ComplaintCell:
    complaints: set[str] = field(default_factory=set)
    resolved: int = 0
    overdue: int = 0
    days_to_resolve: list[int] = field(default_factory=list)

    @property
    def units(self) -> set[str]:
        return self.complaints

    @property
    def median_days_to_resolve(self) -> Optional[float]:
        return statistics.median(self.days_to_resolve) if self.days_to_resolve else None


def complaint_cells(state: ApiState, size: int, level: str) -> dict[analytics.Key, ComplaintCell]:
    """Per (region prefix, category, month of date(filed.at)): status as the inspector
    list has it (closed once a resolution names it; overdue at the default as-of date);
    days to resolve from the complaint's local date to its latest resolution's."""
    def compute() -> dict[analytics.Key, ComplaintCell]:
        view = analytics.fact_view(state, size)
        digits = analytics.LEVELS[level]
        out: dict[analytics.Key, ComplaintCell] = defaultdict(ComplaintCell)
        for row in complaint_rows(state)[0]:
            cell = out[(row["region"][:digits], row["category"], row["at"][:7])]
            cell.complaints.add(row["complaint_id"])
            cell.overdue += row["overdue"]
            if row["resolutions"]:
                cell.resolved += 1
                closed = view.by_id[row["resolutions"][-1]]["at"][:10]
                cell.days_to_resolve.append((dt.date.fromisoformat(closed) - dt.date.fromisoformat(row["at"][:10])).days)
        return dict(out)

    return state.cached(("complaint_cells", level), size, compute)


def hidden_complaint_cells(state: ApiState, size: int) -> dict[str, set[analytics.Key]]:
    return state.cached(("complaint_hidden",), size,
                        lambda: analytics.suppress_levels(lambda level: complaint_cells(state, size, level)))


@dataclass
class RegisterMatches:
    matches: Counter = field(default_factory=Counter)
    published_cells: int = 0
    hidden_cells: int = 0


def register_matches(state: ApiState, size: int, level: str) -> dict[tuple[Optional[str], str], RegisterMatches]:
    """Per (region prefix, program): orders that fired each register rule, over its published aid cells."""
    hidden = analytics.hidden_cells(state, size)[level]
    out: dict[tuple[Optional[str], str], RegisterMatches] = defaultdict(RegisterMatches)
    for key, cell in analytics.cells(state, size, level).items():
        row = out[(key[0], key[1])]
        if key in hidden:
            row.hidden_cells += 1
            continue
        row.published_cells += 1
        row.matches.update({rule: cell.anomalies.get(rule, 0) for rule in REGISTER_RULES})
    return dict(out)
