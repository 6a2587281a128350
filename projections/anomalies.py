"""The anomaly read model: SPEC §4 (and v2 §5, §6) anomalies kept up to date incrementally.

The full list of anomalies as of the default date (the latest ``at``) is kept
as rows, each owned by one *scope*, a part of the log that is re-evaluated as
a whole by the pure engine (:func:`jejak.projections.engine.evaluate_scope`)
over a subset of facts that is closed for the scope's primaries:

``k:<kk>|<program>``
    every rule about the family's orders of the program, and about
    settlements and pickups of those orders (subject = kk). Facts: the
    family's orders, decisions and assignments of the program (every such rule
    looks only at its own kk and program); every fact referencing one of those
    orders (complaints naming one included: disputed_pickup, primary = the
    complaint); asn/death/register facts of the niks of those orders and
    pickups (asn_recipient, barred_recipient, flagged_recipient); all rates.
    Also the ``unclaimed_funds`` candidates (the as-of date is applied at
    query time).
``r:<ref>``
    settlements, pickups and returns referencing an order id that is not
    (yet) known: ghost_settlement, pickup_without_disbursement,
    deceased_recipient. Facts: those referencing ref; deaths of their niks.
``n:<nik>``
    nik_in_multiple_families of a representative nik. Facts: every decision
    of every family in which nik appears as representative.
``c:<companion>``
    companion_concentration. Facts: the companion's pickups and their orders.
``q:<complaint id>``
    unknown_complaint of the resolutions naming that id, and the
    ``complaint_overdue`` candidate of the complaint if it is open (the as-of
    date is applied at query time, as for unclaimed_funds). Facts: the
    ``complaint.filed`` of that id and every resolution naming it.
``m:<companion>``
    companion_complaints. Facts: the pungli complaints naming the companion
    and every resolution naming one of them.

``apply`` (in the projector's transaction, with the position) records what
a batch touches as *dirty marks* (``p_anom_dirty``) and keeps small side
indexes the scopes need and ``p_facts`` lacks: companion pickups
(``p_anom_comp``), representatives of decisions (``p_anom_reps``),
asn/death/register facts (``p_anom_people``), complaints and resolutions by
complaint id, with the companion a pungli complaint names
(``p_anom_compl``), rates (``p_anom_rates``) and the latest instant of the
log (``p_anom_meta``: the default as-of). Some marks are indirect ("facts
about order X", "a person's asn/death", "decisions of family K", "new rates",
"everything" for a replay from index 0) and are expanded to scopes with
indexed joins when settled.

``settle`` evaluates dirty scopes in bounded chunks, each chunk's rows
replaced and its marks deleted in one transaction, under the model's position
lock (which ``apply`` also takes, so a mark added meanwhile is never lost).
Readers settle before reading (:meth:`Anomalies.query` after
``Projector.settle``); a catch-up does not, so catching up costs about what
ingest does and a scope touched by many catch-ups is evaluated once. A crash
leaves marks, never half-written scopes; rebuild = replay = one "everything"
mark, evaluated by the next reader.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

import orjson

from jejak.domain.facts import FACT_TYPES as SPEC_FACT_TYPES
from jejak.projections.engine import (
    RULES,
    Thresholds,
    evaluate_scope,
    instant_key,
    overdue_anomaly,
    unclaimed_anomaly,
)
from jejak.projections.base import LogRecord, ReadModel, SettleProgress, run_in, select_in
from jejak.store.datastore import Store

_RANK = {r: i for i, r in enumerate(RULES)}
#: The read model is built with these thresholds; companion_families,
#: indicator_registers and companion_complaints are baked into its rows,
#: unclaimed_days and complaint_days are applied at query time.
MODEL_THRESHOLDS = Thresholds()

ORDER = "disbursement.ordered"
DECISION = "eligibility.decided"
PICKUP = "pickup.recorded"
COMPLAINT = "complaint.filed"
RESOLUTION = "complaint.resolved"
_REF_TYPES = ("disbursement.settled", "pickup.recorded", "funds.returned")
#: facts a family scope takes in through the order they reference
_FAMILY_REF_TYPES = (*_REF_TYPES, COMPLAINT)
_PERSON_TYPES = ("asn.registered", "death.recorded", "register.listed")
_KK_TYPES = (ORDER, DECISION, "companion.assigned")

#: Scopes evaluated per chunk (bounds memory and transaction size).
CHUNK = {"k": 1000, "r": 2000, "n": 2000, "c": 500, "q": 2000, "m": 500}
_FAMILY_RULES = frozenset(RULES) - {"nik_in_multiple_families", "companion_concentration", "complaint_overdue",
                                    "companion_complaints", "unknown_complaint"}
#: Scope kinds with candidates whose firing depends on the as-of date, and their table.
_CANDIDATE_TABLES = {"k": "p_anom_unclaimed", "q": "p_anom_overdue"}
_ORPHAN_RULES = frozenset({"ghost_settlement", "pickup_without_disbursement", "deceased_recipient"})


def _facts(rows: Iterable[Any]) -> list[dict]:
    """p_facts rows -> engine facts (body + seq), as load_fact_rows makes them."""
    loads = orjson.loads
    out = []
    append = out.append
    for r in rows:
        body = loads(r["body"])
        body["seq"] = r["idx"]
        append(body)
    return out


class Anomalies(ReadModel):
    name = "anomalies"
    tables = ("p_anom_rows", "p_anom_unclaimed", "p_anom_overdue", "p_anom_dirty", "p_anom_comp", "p_anom_reps",
              "p_anom_people", "p_anom_compl", "p_anom_rates", "p_anom_meta")

    def create_statements(self, store: Store) -> list[str]:
        blob = store.recorder.BLOB
        big = store.recorder.BIGINT
        return [
            f"CREATE TABLE IF NOT EXISTS p_anom_rows (scope TEXT NOT NULL, rnk INTEGER NOT NULL, "
            f"prim TEXT NOT NULL, body {blob} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_rows_scope ON p_anom_rows (scope)",
            f"CREATE TABLE IF NOT EXISTS p_anom_unclaimed (scope TEXT NOT NULL, order_id TEXT NOT NULL, "
            f"first_day TEXT NOT NULL, body {blob} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_unclaimed_scope ON p_anom_unclaimed (scope)",
            "CREATE INDEX IF NOT EXISTS p_anom_unclaimed_day ON p_anom_unclaimed (first_day)",
            f"CREATE TABLE IF NOT EXISTS p_anom_overdue (scope TEXT NOT NULL, complaint_id TEXT NOT NULL, "
            f"filed_day TEXT NOT NULL, body {blob} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_overdue_scope ON p_anom_overdue (scope)",
            "CREATE INDEX IF NOT EXISTS p_anom_overdue_day ON p_anom_overdue (filed_day)",
            f"CREATE TABLE IF NOT EXISTS p_anom_compl (complaint TEXT NOT NULL, companion TEXT, idx {big} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_compl_complaint ON p_anom_compl (complaint)",
            "CREATE INDEX IF NOT EXISTS p_anom_compl_companion ON p_anom_compl (companion)",
            "CREATE TABLE IF NOT EXISTS p_anom_dirty (kind TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (kind, key))",
            f"CREATE TABLE IF NOT EXISTS p_anom_comp (companion TEXT NOT NULL, ref TEXT NOT NULL, idx {big} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_comp_companion ON p_anom_comp (companion)",
            "CREATE INDEX IF NOT EXISTS p_anom_comp_ref ON p_anom_comp (ref)",
            f"CREATE TABLE IF NOT EXISTS p_anom_reps (nik TEXT NOT NULL, kk TEXT NOT NULL, idx {big} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_reps_nik ON p_anom_reps (nik)",
            "CREATE INDEX IF NOT EXISTS p_anom_reps_kk ON p_anom_reps (kk)",
            f"CREATE TABLE IF NOT EXISTS p_anom_people (nik TEXT NOT NULL, idx {big} NOT NULL, body {blob} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS p_anom_people_nik ON p_anom_people (nik)",
            f"CREATE TABLE IF NOT EXISTS p_anom_rates (idx {big} PRIMARY KEY, body {blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS p_anom_meta (id INTEGER PRIMARY KEY, secs {big} NOT NULL, "
            f"frac TEXT NOT NULL, seq {big} NOT NULL, day TEXT NOT NULL)",
        ]

    # ------------------------------------------------------------------ apply
    def apply(self, store: Store, cursor: Any, records: Sequence[LogRecord]) -> None:
        if records and records[0].index == 0:
            # Replay from the start (rebuild, first catch-up): everything is
            # dirty; one mark instead of one per fact.
            store.execute(cursor, "INSERT INTO p_anom_dirty (kind, key) VALUES ('*', '') "
                                  "ON CONFLICT (kind, key) DO NOTHING")
        store.execute(cursor, "SELECT 1 AS x FROM p_anom_dirty WHERE kind = '*' AND key = ''")
        everything = cursor.fetchone() is not None
        marks: set[tuple[str, str]] = set()
        # While everything is dirty anyway, only the side tables are kept.
        add = _ignore if everything else marks.add
        comp_rows = []
        rep_rows = []
        people_rows = []
        compl_rows = []
        rate_rows = []
        ats = []
        ats_append = ats.append
        spec = SPEC_FACT_TYPES
        for r in records:
            f = r.fact
            t = f["type"]
            if t not in spec:
                continue
            ats_append((f["at"], r.index))
            if t == ORDER:
                add(("k", f"{f['kk']}|{f['program']}"))
                add(("o", f["id"]))
            elif t in _REF_TYPES:
                add(("f", f["disbursement"]))
                if t == PICKUP and f.get("by") == "companion":
                    comp = str(f.get("companion"))
                    add(("c", comp))
                    comp_rows.append((comp, f["disbursement"], r.index))
            elif t == DECISION:
                add(("k", f"{f['kk']}|{f['program']}"))
                add(("d", f["kk"]))
                rep_rows.append((f["nik"], f["kk"], r.index))
            elif t == "companion.assigned":
                add(("k", f"{f['kk']}|{f['program']}"))
            elif t in _PERSON_TYPES:
                add(("p", f["nik"]))
                people_rows.append((f["nik"], r.index, _body(r)))
            elif t == "rates.set":
                add(("a", ""))
                rate_rows.append((r.index, _body(r)))
            elif t == COMPLAINT:
                add(("q", f["id"]))
                if isinstance(f.get("disbursement"), str):
                    add(("f", f["disbursement"]))
                named = f.get("companion")
                pungli = f["category"] == "pungli" and isinstance(named, str)
                compl_rows.append((f["id"], named if pungli else None, r.index))
            elif t == RESOLUTION:
                add(("q", f["complaint"]))
                compl_rows.append((f["complaint"], None, r.index))
        if marks and not everything:
            cursor.executemany(
                store.sql("INSERT INTO p_anom_dirty (kind, key) VALUES (?, ?) ON CONFLICT (kind, key) DO NOTHING"),
                sorted(marks),
            )
        bulk = store.recorder.bulk_insert
        if comp_rows:
            bulk(cursor, "p_anom_comp", ("companion", "ref", "idx"), comp_rows)
        if rep_rows:
            bulk(cursor, "p_anom_reps", ("nik", "kk", "idx"), rep_rows)
        if people_rows:
            bulk(cursor, "p_anom_people", ("nik", "idx", "body"), people_rows)
        if compl_rows:
            bulk(cursor, "p_anom_compl", ("complaint", "companion", "idx"), compl_rows)
        if rate_rows:
            bulk(cursor, "p_anom_rates", ("idx", "body"), rate_rows)
        if ats:
            best = _latest(ats)
            store.execute(cursor, "SELECT secs, frac, seq FROM p_anom_meta WHERE id = 1")
            row = cursor.fetchone()
            if row is None or best[:3] > (row["secs"], row["frac"], row["seq"]):
                store.execute(
                    cursor,
                    "INSERT INTO p_anom_meta (id, secs, frac, seq, day) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) "
                    "DO UPDATE SET secs = excluded.secs, frac = excluded.frac, seq = excluded.seq, day = excluded.day",
                    best,
                )

    # ----------------------------------------------------------------- settle
    def _lock(self, store: Store, cursor: Any) -> None:
        """The model's position row: held by apply (projector) and settle alike,
        so a dirty mark is never lost to a concurrent settle."""
        name = self.position_name
        store.execute(
            cursor, "INSERT INTO jejak_positions (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,)
        )
        if store.is_postgres:
            store.execute(cursor, "SELECT position FROM jejak_positions WHERE name = ? FOR UPDATE", (name,))
        else:
            store.execute(cursor, "UPDATE jejak_positions SET position = position WHERE name = ?", (name,))

    def settle(self, store: Store, progress: SettleProgress | None = None) -> int:
        """Evaluate every dirty scope; returns how many scopes were evaluated.
        ``progress(scopes done, scopes to do)``."""
        if store.query_one("SELECT kind FROM p_anom_dirty LIMIT 1") is None:
            return 0
        with store.transaction(commit=True) as cursor:
            self._lock(store, cursor)
            self._expand(store, cursor)
            store.execute(cursor, "SELECT COUNT(*) AS n FROM p_anom_dirty")
            total = cursor.fetchone()["n"]
        rates: list[dict] | None = None
        done = 0
        for kind in ("k", "r", "n", "c", "q", "m"):
            while True:
                with store.transaction(commit=True) as cursor:
                    self._lock(store, cursor)
                    store.execute(
                        cursor, f"SELECT key FROM p_anom_dirty WHERE kind = ? ORDER BY key LIMIT {CHUNK[kind]}", (kind,)
                    )
                    keys = [r["key"] for r in cursor.fetchall()]
                    if not keys:
                        break
                    if kind == "k" and rates is None:
                        store.execute(cursor, "SELECT idx, body FROM p_anom_rates ORDER BY idx")
                        rates = _facts(cursor.fetchall())
                    rows, candidates = getattr(self, f"_eval_{kind}")(store, cursor, keys, rates)
                    scopes = [f"{kind}:{k}" for k in keys]
                    side = _CANDIDATE_TABLES.get(kind)
                    for table in ("p_anom_rows", side):
                        if table is not None:
                            _delete_in(store, cursor, f"DELETE FROM {table} WHERE 1 = 1", "scope", scopes)
                    if rows:
                        store.recorder.bulk_insert(cursor, "p_anom_rows", ("scope", "rnk", "prim", "body"), rows)
                    if candidates:
                        columns = ("scope", "order_id", "first_day", "body") if kind == "k" else \
                            ("scope", "complaint_id", "filed_day", "body")
                        store.recorder.bulk_insert(cursor, side, columns, candidates)
                    # the keys just read are the kind's lowest ones, and none
                    # can be added meanwhile (the lock): one index range
                    store.execute(cursor, "DELETE FROM p_anom_dirty WHERE kind = ? AND key <= ?", (kind, keys[-1]))
                    done += len(keys)
                if progress:
                    total = max(total, done)  # marks added meanwhile
                    progress(len(keys), total)
        return done

    def _expand(self, store: Store, cursor: Any) -> None:
        """Indirect marks -> scope marks, in dependency order."""
        ins = "INSERT INTO p_anom_dirty (kind, key) "
        tail = " ON CONFLICT (kind, key) DO NOTHING"
        ex = lambda sql, params=(): store.execute(cursor, ins + sql + tail, params)  # noqa: E731
        store.execute(cursor, "SELECT 1 AS x FROM p_anom_dirty WHERE kind = '*' AND key = ''")
        if cursor.fetchone() is not None:  # everything: every scope that can hold rows
            for table in ("p_anom_rows", "p_anom_unclaimed", "p_anom_overdue", "p_anom_dirty"):
                store.execute(cursor, f"DELETE FROM {table}")
            ex("SELECT DISTINCT 'k', kk || '|' || program FROM p_facts WHERE kk IS NOT NULL AND program IS NOT NULL")
            ex("SELECT DISTINCT 'r', f.ref FROM p_facts f WHERE f.ref IS NOT NULL AND NOT EXISTS "
               "(SELECT 1 FROM p_facts o WHERE o.fact_id = f.ref AND o.type = ?)", (ORDER,))
            ex("SELECT DISTINCT 'n', nik FROM p_anom_reps WHERE 1 = 1")
            ex("SELECT DISTINCT 'c', companion FROM p_anom_comp WHERE 1 = 1")
            ex("SELECT DISTINCT 'q', complaint FROM p_anom_compl WHERE 1 = 1")
            ex("SELECT DISTINCT 'm', companion FROM p_anom_compl WHERE companion IS NOT NULL")
            return
        store.execute(cursor, "SELECT 1 AS x FROM p_anom_dirty WHERE kind = 'a' LIMIT 1")
        if cursor.fetchone() is not None:  # new rates: every family with an order
            ex("SELECT DISTINCT 'k', kk || '|' || program FROM p_facts WHERE type = ? AND kk IS NOT NULL "
               "AND program IS NOT NULL", (ORDER,))
        # a person's asn/death: families of their orders; orders of their pickups
        ex("SELECT DISTINCT 'k', f.kk || '|' || f.program FROM p_anom_dirty d JOIN p_facts f ON f.nik = d.key "
           "WHERE d.kind = 'p' AND f.type = ? AND f.kk IS NOT NULL AND f.program IS NOT NULL", (ORDER,))
        ex("SELECT DISTINCT 'f', f.ref FROM p_anom_dirty d JOIN p_facts f ON f.nik = d.key "
           "WHERE d.kind = 'p' AND f.type = ? AND f.ref IS NOT NULL", (PICKUP,))
        # a new order: its former orphans, its companions' pickups
        ex("SELECT 'r', key FROM p_anom_dirty WHERE kind = 'o'")
        ex("SELECT DISTINCT 'c', c.companion FROM p_anom_dirty d JOIN p_anom_comp c ON c.ref = d.key "
           "WHERE d.kind = 'o'")
        # facts about order X: X's family if X is known, else the orphan scope
        ex("SELECT DISTINCT 'k', f.kk || '|' || f.program FROM p_anom_dirty d JOIN p_facts f ON f.fact_id = d.key "
           "WHERE d.kind = 'f' AND f.type = ? AND f.kk IS NOT NULL AND f.program IS NOT NULL", (ORDER,))
        ex("SELECT 'r', d.key FROM p_anom_dirty d WHERE d.kind = 'f' AND NOT EXISTS "
           "(SELECT 1 FROM p_facts f WHERE f.fact_id = d.key AND f.type = ?)", (ORDER,))
        # a complaint or a resolution naming it: the companion the complaint names for pungli
        ex("SELECT DISTINCT 'm', c.companion FROM p_anom_dirty d JOIN p_anom_compl c ON c.complaint = d.key "
           "WHERE d.kind = 'q' AND c.companion IS NOT NULL")
        # decisions of family K: every representative nik of K
        ex("SELECT DISTINCT 'n', r.nik FROM p_anom_dirty d JOIN p_anom_reps r ON r.kk = d.key WHERE d.kind = 'd'")
        store.execute(cursor, "DELETE FROM p_anom_dirty WHERE kind IN ('a', 'p', 'o', 'f', 'd')")

    # ---- scope evaluations: (anomaly rows, unclaimed rows)
    def _eval_k(self, store: Store, cursor: Any, keys: list[str], rates: list[dict] | None):
        pairs = {tuple(k.rsplit("|", 1)) for k in keys}
        kks = sorted({kk for kk, _ in pairs})
        sel = "SELECT idx, body FROM p_facts WHERE 1 = 1"
        # (types checked: a fact may carry extra kk/disbursement fields)
        own = [f for f in _facts(select_in(store, cursor, sel, "kk", kks))
               if f["type"] in _KK_TYPES and (f["kk"], f.get("program")) in pairs]
        scope_of = {f["id"]: f"k:{f['kk']}|{f['program']}" for f in own if f["type"] == ORDER}
        # facts referencing the families' orders, joined in SQL rather than
        # sent back as a list of thousands of order ids
        refs = [f for f in _facts(select_in(
            store, cursor, "SELECT f.idx, f.body FROM p_facts o JOIN p_facts f ON f.ref = o.fact_id WHERE o.type = ?",
            "o.kk", kks, (ORDER,)))
            if f["type"] in _FAMILY_REF_TYPES and f["disbursement"] in scope_of]
        for f in refs:
            scope_of[f["id"]] = scope_of[f["disbursement"]]
        niks = {f["nik"] for f in own if f["type"] == ORDER}
        niks.update(f["nik"] for f in refs if f["type"] == PICKUP)
        people = _facts(select_in(store, cursor, "SELECT idx, body FROM p_anom_people WHERE 1 = 1", "nik",
                                  sorted(n for n in niks if n is not None)))
        found, cands, _ = evaluate_scope(own + refs + people + (rates or []), MODEL_THRESHOLDS)
        rows = []
        for a in found:
            if a.rule in _FAMILY_RULES:
                scope = scope_of.get(a.primary)
                if scope is None or not scope.startswith(f"k:{a.subject}|"):
                    raise AssertionError(f"anomaly {a.rule} {a.primary} outside its family scope")
                rows.append((scope, _RANK[a.rule], a.primary, orjson.dumps(a.to_dict())))
        unclaimed = [
            # the sums as decimal text: they may pass 64 bits, which orjson cannot write
            (scope_of[oid], oid, first_day, orjson.dumps([oid, kk, str(c), str(pu), str(rt), first_day, list(ids)]))
            for oid, kk, c, pu, rt, first_day, ids in cands
        ]
        return rows, unclaimed

    def _eval_r(self, store: Store, cursor: Any, refs: list[str], _rates):
        known = {r["fact_id"] for r in select_in(
            store, cursor, "SELECT fact_id FROM p_facts WHERE type = ?", "fact_id", refs, (ORDER,))}
        orphans = [r for r in refs if r not in known]
        facts = _facts(select_in(store, cursor, "SELECT idx, body FROM p_facts WHERE 1 = 1", "ref", orphans))
        facts = [f for f in facts if f["type"] in _REF_TYPES]
        ref_of = {f["id"]: f["disbursement"] for f in facts}
        niks = sorted({f["nik"] for f in facts if f["type"] == PICKUP and f.get("nik") is not None})
        deaths = _facts(select_in(store, cursor, "SELECT idx, body FROM p_anom_people WHERE 1 = 1", "nik", niks))
        found, _, _ = evaluate_scope(facts + deaths, MODEL_THRESHOLDS)
        rows = []
        for a in found:
            if a.rule not in _ORPHAN_RULES:
                raise AssertionError(f"anomaly {a.rule} {a.primary} in an orphan scope")
            rows.append((f"r:{ref_of[a.primary]}", _RANK[a.rule], a.primary, orjson.dumps(a.to_dict())))
        return rows, []

    def _eval_n(self, store: Store, cursor: Any, niks: list[str], _rates):
        kks = sorted({r["kk"] for r in select_in(store, cursor, "SELECT kk FROM p_anom_reps WHERE 1 = 1", "nik", niks)})
        idxs = sorted({r["idx"] for r in select_in(store, cursor, "SELECT idx FROM p_anom_reps WHERE 1 = 1", "kk", kks)})
        facts = _facts(select_in(store, cursor, "SELECT idx, body FROM p_facts WHERE 1 = 1", "idx", idxs))
        found, _, _ = evaluate_scope(facts, MODEL_THRESHOLDS)
        wanted = set(niks)
        rows = [
            (f"n:{a.subject}", _RANK[a.rule], a.primary, orjson.dumps(a.to_dict()))
            for a in found
            if a.rule == "nik_in_multiple_families" and a.subject in wanted
        ]
        return rows, []

    def _eval_c(self, store: Store, cursor: Any, comps: list[str], _rates):
        idxs = sorted({r["idx"] for r in select_in(
            store, cursor, "SELECT idx FROM p_anom_comp WHERE 1 = 1", "companion", comps)})
        pickups = _facts(select_in(store, cursor, "SELECT idx, body FROM p_facts WHERE 1 = 1", "idx", idxs))
        refs = sorted({f["disbursement"] for f in pickups})
        orders = _facts(select_in(store, cursor, "SELECT idx, body FROM p_facts WHERE type = ?", "fact_id", refs,
                                  (ORDER,)))
        found, _, _ = evaluate_scope(pickups + orders, MODEL_THRESHOLDS)
        wanted = {f"companion:{c}": c for c in comps}
        rows = [
            (f"c:{wanted[a.subject]}", _RANK[a.rule], a.primary, orjson.dumps(a.to_dict()))
            for a in found
            if a.rule == "companion_concentration" and a.subject in wanted
        ]
        return rows, []

    def _eval_q(self, store: Store, cursor: Any, complaint_ids: list[str], _rates):
        facts = self._complaint_facts(store, cursor, complaint_ids)
        found, _, overdue = evaluate_scope(facts, MODEL_THRESHOLDS)
        named = {f["id"]: f["complaint"] for f in facts if f["type"] == RESOLUTION}
        rows = [(f"q:{named[a.primary]}", _RANK[a.rule], a.primary, orjson.dumps(a.to_dict()))
                for a in found if a.rule == "unknown_complaint"]
        candidates = [(f"q:{cid}", cid, day, orjson.dumps([cid, subject, day, list(ids)]))
                      for cid, subject, day, ids in overdue]
        return rows, candidates

    def _eval_m(self, store: Store, cursor: Any, comps: list[str], _rates):
        cids = sorted({r["complaint"] for r in select_in(
            store, cursor, "SELECT complaint FROM p_anom_compl WHERE 1 = 1", "companion", comps)})
        found, _, _ = evaluate_scope(self._complaint_facts(store, cursor, cids), MODEL_THRESHOLDS)
        wanted = {f"companion:{c}": c for c in comps}
        rows = [
            (f"m:{wanted[a.primary]}", _RANK[a.rule], a.primary, orjson.dumps(a.to_dict()))
            for a in found
            if a.rule == "companion_complaints" and a.primary in wanted
        ]
        return rows, []

    @staticmethod
    def _complaint_facts(store: Store, cursor: Any, complaint_ids: list[str]) -> list[dict]:
        """The complaints of these ids and every resolution naming one of them."""
        idxs = sorted({r["idx"] for r in select_in(
            store, cursor, "SELECT idx FROM p_anom_compl WHERE 1 = 1", "complaint", complaint_ids)})
        facts = _facts(select_in(store, cursor, "SELECT idx, body FROM p_facts WHERE 1 = 1", "idx", idxs))
        return [f for f in facts if f["type"] in (COMPLAINT, RESOLUTION)]

    # ------------------------------------------------------------------ query
    @staticmethod
    def serves(thresholds: Thresholds) -> bool:
        """Can :meth:`query` answer for these thresholds (those baked into its rows are the model's)?"""
        m = MODEL_THRESHOLDS
        return (thresholds.companion_families, thresholds.indicator_registers, thresholds.companion_complaints) == (
            m.companion_families, m.indicator_registers, m.companion_complaints)

    @staticmethod
    def query(store: Store, unclaimed_days: int, complaint_days: int = MODEL_THRESHOLDS.complaint_days
              ) -> list[dict[str, Any]]:
        """The full anomaly list as of the latest ``at`` (tokens, not revealed),
        in the engine's order. Call after a catch-up and :meth:`settle`."""
        with store.transaction(commit=False) as cursor:
            store.execute(cursor, "SELECT day FROM p_anom_meta WHERE id = 1")
            meta = cursor.fetchone()
            store.execute(cursor, "SELECT rnk, prim, body FROM p_anom_rows")
            rows = cursor.fetchall()
            keyed = [(r["rnk"], r["prim"], r["body"]) for r in rows]
            if meta is not None:
                as_of = dt.date.fromisoformat(meta["day"])
                # days > limit  <=>  day < as_of - limit (ISO dates sort as text)
                store.execute(cursor, "SELECT body FROM p_anom_unclaimed WHERE first_day < ?",
                              (_cutoff(as_of, unclaimed_days),))
                rank = _RANK["unclaimed_funds"]
                for r in cursor.fetchall():
                    oid, kk, c, pu, rt, first_day, ids = orjson.loads(r["body"])
                    a = unclaimed_anomaly(oid, kk, int(c), int(pu), int(rt), first_day, ids, as_of, unclaimed_days)
                    if a is not None:
                        keyed.append((rank, a.primary, a.to_dict()))
                store.execute(cursor, "SELECT body FROM p_anom_overdue WHERE filed_day < ?",
                              (_cutoff(as_of, complaint_days),))
                rank = _RANK["complaint_overdue"]
                for r in cursor.fetchall():
                    cid, subject, day, ids = orjson.loads(r["body"])
                    a = overdue_anomaly(cid, subject, day, ids, as_of, complaint_days)
                    if a is not None:
                        keyed.append((rank, a.primary, a.to_dict()))
        keyed.sort(key=lambda k: (k[0], k[1]))
        return [b if isinstance(b, dict) else orjson.loads(b) for _, _, b in keyed]


def _cutoff(as_of: dt.date, days: int) -> str:
    """as_of - days as an ISO date, or a bound every date is below / above."""
    try:
        return (as_of - dt.timedelta(days=days)).isoformat()
    except OverflowError:
        return "9999-99-99" if days < 0 else "0000-00-00"


def _body(r: LogRecord) -> bytes:
    """The fact as FactIndex stores it in p_facts.body."""
    body = dict(r.fact)
    body.update(r.derived)
    return orjson.dumps(body)


def _delete_in(store: Store, cursor: Any, delete: str, column: str, values: Sequence[Any],
               params: Sequence[Any] = ()) -> None:
    run_in(store, cursor, delete, column, values, params, fetch=False)


def _latest(ats: list[tuple[str, int]]) -> tuple[int, str, int, str]:
    """(secs, fraction, seq, date) of the latest instant among (at, seq) pairs
    (ties: the later seq), as :func:`engine.default_as_of` orders them.

    Within one offset, instants order like their first 19 characters
    (date and time to the second), so only the pairs holding their offset's
    greatest such prefix need an exact instant."""
    top: dict[str, str] = {}
    for at, _ in ats:
        off = at[-6:] if at[-1] not in "Zz" else "Z"
        head = at[:19]
        cur = top.get(off)
        if cur is None or head > cur:
            top[off] = head
    best = None
    for at, seq in ats:
        off = at[-6:] if at[-1] not in "Zz" else "Z"
        if at[:19] != top[off]:
            continue
        k = (*instant_key(at), seq)
        if best is None or k > best[0]:
            best = (k, at)
    (secs, frac, seq), at = best
    return secs, frac, seq, at[:10]


def _ignore(_: Any) -> None:
    return None
