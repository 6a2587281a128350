"""`jejak balances`, `jejak anomalies`, `jejak rebuild` through the real CLI.

Output shapes exactly per SPEC §2–§4 (keys and their order), exit codes,
filters, `--as-of`, and one PostgreSQL case byte-identical to SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from jejak.generate import write_files
from jejak.store.datastore import Store
from jejak.projections.engine import RULES, Thresholds, compute_balances, evaluate_anomalies

_script = Path(sys.executable).parent / "jejak"
JEJAK = [str(_script)] if _script.exists() else [sys.executable, "-m", "jejak.cli"]

BALANCE_KEYS = ["kk", "program", "ordered", "credited", "picked_up", "returned", "outstanding"]
ANOMALY_KEYS = ["rule", "primary", "subject", "facts", "detail"]


def jejak(cwd: Path, keys: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
    env["JEJAK_KEYS_DIR"] = str(keys)
    return subprocess.run([*JEJAK, *args], cwd=cwd, env=env, capture_output=True, timeout=timeout)


def rows(out: bytes) -> list[dict[str, Any]]:
    """JSONL, keeping key order; every line must be one JSON object."""
    text = out.decode()
    assert text == "" or text.endswith("\n")
    return [json.loads(ln) for ln in text.split("\n")[:-1]]


class World:
    """One ingested store, with the input facts at hand."""

    def __init__(self, root: Path, store: str, facts_path: Path, expected_path: Path) -> None:
        self.root, self.store, self.keys = root, store, root / "keys"
        self.path = facts_path
        self.facts = [orjson.loads(ln) for ln in facts_path.read_bytes().splitlines() if ln.strip()]
        for seq, f in enumerate(self.facts):
            f["seq"] = seq
        self.by_id = {f["id"]: f for f in self.facts}
        self.expected = {(e["rule"], e["primary"]) for e in map(orjson.loads, expected_path.read_bytes().splitlines())}
        self._cache: dict[tuple[str, ...], bytes] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return jejak(self.root, self.keys, "--store", self.store, *args)

    def cached(self, *args: str) -> bytes:
        """Output of a read-only command (the log does not change between these tests)."""
        if args not in self._cache:
            self._cache[args] = self.ok(*args)
        return self._cache[args]

    def ok(self, *args: str) -> bytes:
        res = self.run(*args)
        assert res.returncode == 0, (args, res.returncode, res.stderr.decode()[-2000:])
        assert b"Traceback" not in res.stderr
        return res.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cli-data")
    write_files(150, 29, d / "facts.jsonl", plant=True, expected_path=d / "expected.jsonl")
    return d / "facts.jsonl", d / "expected.jsonl"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, data) -> World:
    root = tmp_path_factory.mktemp("cli-sqlite")
    w = World(root, str(root / "jejak.db"), *data)
    res = w.run("ingest", str(w.path))
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert json.loads(res.stdout) == {"accepted": len(w.facts), "duplicates": 0, "rejected": 0}
    return w


# ---------------------------------------------------------------------- balances


def check_balance_shape(lines: list[dict[str, Any]]) -> None:
    for b in lines:
        assert list(b) == BALANCE_KEYS, list(b)
        assert isinstance(b["kk"], str) and len(b["kk"]) == 16 and b["kk"].isdigit()
        assert b["program"] in ("PKH", "BPNT")
        for k in BALANCE_KEYS[2:]:
            assert type(b[k]) is int, (k, b[k])
        assert b["outstanding"] == b["credited"] - b["picked_up"] - b["returned"]
    assert len({(b["kk"], b["program"]) for b in lines}) == len(lines), "one line per (kk, program)"


def test_balances(world: World) -> None:
    lines = rows(world.cached("balances"))
    check_balance_shape(lines)
    expected = [b.to_dict() for b in compute_balances(world.facts)]
    key = lambda b: (b["kk"], b["program"])  # noqa: E731
    assert sorted(lines, key=key) == sorted(expected, key=key)
    assert any(b["credited"] for b in lines) and any(b["returned"] for b in lines)


def test_balances_kk(world: World) -> None:
    everything = rows(world.cached("balances"))
    two_programs = next(kk for kk in {b["kk"] for b in everything} if sum(b["kk"] == kk for b in everything) == 2)
    for kk in (everything[0]["kk"], everything[-1]["kk"], two_programs):
        only = rows(world.ok("balances", "--kk", kk))
        check_balance_shape(only)
        assert only and all(b["kk"] == kk for b in only)
        assert sorted(only, key=lambda b: b["program"]) == sorted((b for b in everything if b["kk"] == kk),
                                                                  key=lambda b: b["program"])
    assert world.ok("balances", "--kk", "9999999999999999") == b""


# --------------------------------------------------------------------- anomalies


def check_anomaly_shape(lines: list[dict[str, Any]], w: World) -> None:
    for a in lines:
        assert list(a) == ANOMALY_KEYS, list(a)
        assert a["rule"] in RULES
        assert isinstance(a["primary"], str) and a["primary"]
        assert isinstance(a["subject"], str) and isinstance(a["detail"], str) and a["detail"]
        assert isinstance(a["facts"], list) and a["facts"] and all(isinstance(x, str) for x in a["facts"])
        assert all(x in w.by_id for x in a["facts"]), "facts name input fact ids"
        assert "tk1_" not in json.dumps(a), "operator output is revealed"
    keys = [(a["rule"], a["primary"]) for a in lines]
    assert len(keys) == len(set(keys)), "a rule reports each primary at most once"


def normalised(lines: list[dict[str, Any]]) -> list[tuple]:
    return sorted((a["rule"], a["primary"], a["subject"], tuple(sorted(a["facts"])), a["detail"]) for a in lines)


def test_anomalies(world: World) -> None:
    lines = rows(world.cached("anomalies"))
    check_anomaly_shape(lines, world)
    assert {(a["rule"], a["primary"]) for a in lines} == world.expected
    engine = [a.to_dict() for a in evaluate_anomalies(world.facts, None, Thresholds())]
    assert normalised(lines) == normalised(engine)


@pytest.mark.parametrize("as_of", ["2024-02-29", "2024-06-30", "2025-06-30"])
def test_anomalies_as_of(world: World, as_of: str) -> None:
    lines = rows(world.cached("anomalies", "--as-of", as_of))
    check_anomaly_shape(lines, world)
    day = date.fromisoformat(as_of)
    engine = [a.to_dict() for a in evaluate_anomalies(world.facts, day, Thresholds())]
    assert normalised(lines) == normalised(engine)
    # A fact that happened after the as-of date is evidence of nothing yet.
    for a in lines:
        for fid in a["facts"]:
            assert world.by_id[fid]["at"][:10] <= as_of, (a, fid)
    if as_of == "2025-06-30":  # long after: unclaimed credits are reported
        assert any(a["rule"] == "unclaimed_funds" for a in lines)


def test_anomalies_rule(world: World) -> None:
    everything = rows(world.cached("anomalies"))
    for rule in ("duplicate_payout", "over_withdrawal", "nik_in_multiple_families", "companion_concentration",
                 "unclaimed_funds"):
        only = rows(world.ok("anomalies", "--rule", rule))
        assert only == [a for a in everything if a["rule"] == rule]
        if rule in {r for r, _ in world.expected}:
            assert only


def _touches(a: dict[str, Any], w: World, field: str, value: str) -> bool:
    text = " ".join((a["primary"], a["subject"], a["detail"]))
    if value in text:
        return True
    for fid in a["facts"]:
        f = w.by_id[fid]
        if f.get(field) == value:
            return True
        order = w.by_id.get(f.get("disbursement", ""))
        if order is not None and order["type"] == "disbursement.ordered" and order.get(field) == value:
            return True
    return False


def test_anomalies_kk_and_nik(world: World) -> None:
    everything = rows(world.cached("anomalies"))
    probes = []
    for rule in ("duplicate_payout", "nik_in_multiple_families", "over_withdrawal", "settlement_mismatch"):
        a = next(x for x in everything if x["rule"] == rule)
        f = next(world.by_id[i] for i in a["facts"] if world.by_id[i]["type"] in ("disbursement.ordered", "eligibility.decided"))
        probes.append((f["kk"], f["nik"]))
    for kk, nik in probes:
        by_kk = rows(world.ok("anomalies", "--kk", kk))
        assert by_kk, kk
        assert normalised(by_kk) == normalised([a for a in everything if _touches(a, world, "kk", kk)]), kk
        by_nik = rows(world.ok("anomalies", "--nik", nik))
        assert by_nik, nik
        assert normalised(by_nik) == normalised([a for a in everything if _touches(a, world, "nik", nik)]), nik
    both = rows(world.ok("anomalies", "--kk", probes[0][0], "--rule", "duplicate_payout", "--as-of", "2024-12-31"))
    assert both and all(a["rule"] == "duplicate_payout" for a in both)
    assert world.ok("anomalies", "--kk", "9999999999999999") == b""
    assert world.ok("anomalies", "--nik", "1275016708770001") == b""


# ------------------------------------------------------------ rebuild and errors


def dirty_anomaly_marks(world: World) -> int:
    """Scopes of the anomaly read model still waiting to be (re-)evaluated."""
    store = Store.open(world.store, create=False)
    try:
        return store.query_one("SELECT COUNT(*) AS n FROM p_anom_dirty")["n"]
    finally:
        store.close()


def test_rebuild(world: World) -> None:
    balances, anomalies = world.cached("balances"), world.cached("anomalies")
    out = rows(world.ok("rebuild"))
    assert out == [{"replayed": len(world.facts)}]
    # rebuild settles the anomaly model: the next reader has nothing to evaluate
    assert dirty_anomaly_marks(world) == 0
    assert world.ok("balances") == balances
    assert world.ok("anomalies") == anomalies


def test_ingest_leaves_the_anomaly_model_settled(tmp_path: Path, data) -> None:
    w = World(tmp_path, str(tmp_path / "fresh.db"), *data)
    w.ok("ingest", str(w.path))
    assert dirty_anomaly_marks(w) == 0
    one_more = dict(w.facts[0], id="late-order-1")
    del one_more["seq"]
    (tmp_path / "more.jsonl").write_bytes(orjson.dumps(one_more) + b"\n")
    w.ok("ingest", str(tmp_path / "more.jsonl"))
    assert dirty_anomaly_marks(w) == 0


def test_rebuild_shows_progress_on_a_terminal(world: World) -> None:
    """Both phases draw a bar on stderr when it is a terminal (pty), and stdout stays JSON."""
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
    env.update(JEJAK_KEYS_DIR=str(world.keys), COLUMNS="100")
    proc = subprocess.Popen([*JEJAK, "--store", world.store, "rebuild"], cwd=world.root, env=env,
                            stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0, seen[-2000:]
    os.close(leader)
    assert rows(out) == [{"replayed": len(world.facts)}]
    assert b"rebuild" in seen and b"anomaly scopes" in seen, seen[-2000:]


@pytest.mark.parametrize("bad", ["2024-13-01", "2024-02-30", "yesterday", "2024-03-05T10:00:00+07:00", "", "31-12-2024"])
def test_bad_as_of_is_a_usage_error(world: World, bad: str) -> None:
    res = world.run("anomalies", "--as-of", bad)
    err = res.stderr.decode()
    assert res.returncode == 2, (res.returncode, err)
    assert res.stdout == b""
    assert "--as-of" in err and "YYYY-MM-DD" in err and "Traceback" not in err, err


@pytest.mark.parametrize("bad", [
    "20240305",
    "2024-W10-1",
])
def test_non_spec_date_forms_are_rejected(world: World, bad: str) -> None:
    res = world.run("anomalies", "--as-of", bad)
    assert res.returncode == 2, res.stdout.decode()[:300]


def test_exit_codes(world: World, tmp_path: Path) -> None:
    assert world.run("ingest", str(tmp_path / "missing.jsonl")).returncode == 2
    partly = tmp_path / "partly.jsonl"
    partly.write_bytes(world.path.read_bytes().splitlines()[0] + b"\n{oops\n")
    res = world.run("ingest", str(partly))
    assert res.returncode == 3 and json.loads(res.stdout) == {"accepted": 0, "duplicates": 1, "rejected": 1}
    assert world.run("no-such-command").returncode == 2
    assert world.run("anomalies", "--bogus").returncode == 2


# -------------------------------------------------------------------- PostgreSQL


def test_postgresql_outputs_equal_sqlite(world: World, pg_url: str, tmp_path: Path) -> None:
    pg = World(world.root, pg_url, world.path, world.path.parent / "expected.jsonl")  # same keys as the SQLite store
    res = pg.run("ingest", str(pg.path))
    assert res.returncode == 0 and json.loads(res.stdout)["accepted"] == len(pg.facts)
    for args in (["balances"], ["anomalies"], ["anomalies", "--as-of", "2024-06-30"]):
        assert pg.ok(*args) == world.cached(*args), args
    assert rows(pg.ok("rebuild")) == [{"replayed": len(pg.facts)}]
    assert pg.ok("anomalies", "--rule", "duplicate_payout") == world.ok("anomalies", "--rule", "duplicate_payout")
    bad = pg.run("anomalies", "--as-of", "2024-13-01")
    assert bad.returncode == 2 and "--as-of" in bad.stderr.decode()


def test_anomalies_in_indonesian(world: World) -> None:
    english = [json.loads(line) for line in world.run("anomalies").stdout.splitlines()]
    res = world.run("anomalies", "--lang", "id")
    assert res.returncode == 0
    indonesian = [json.loads(line) for line in res.stdout.splitlines()]
    assert [{**a, "detail": None} for a in english] == [{**a, "detail": None} for a in indonesian]
    assert all(a["detail"] != b["detail"] for a, b in zip(english, indonesian))
    assert world.run("anomalies", "--lang", "fr").returncode == 2
