"""Shared helpers for the jejak benchmarks (bench/*.py).

* the facts file is generated once per size into bench/.data/ (gitignored);
* PostgreSQL databases are named `jejak_bench_*` and dropped by `drop_db` /
  `python bench/common.py --drop-all`;
* timers, peak RSS (resource.getrusage / os.wait4 for child processes);
* a machine description recorded with every result.

Numbers are wall-clock on a shared 2-core machine: every figure is measured in
the same script run as its baseline, and the ratio is what matters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DATA = BENCH / ".data"
RESULTS_DIR = DATA / "results"
FACTS_PER_FAMILY = 28.126  # measured: 1,000 families -> 28,126 facts (seed 1)

PG_HOST = os.environ.get("JEJAK_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("JEJAK_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("JEJAK_BENCH_PG_USER", "postgres")
DB_PREFIX = "jejak_bench_"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------ facts file
def facts_file(facts: int, seed: int = 1) -> tuple[Path, int]:
    """Path of a generated facts file of about `facts` facts (made once); real count."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"facts-{facts}-s{seed}.jsonl"
    meta = path.with_suffix(".meta.json")
    if not (path.exists() and meta.exists()):
        from jejak.generate import write_files

        families = max(1, round(facts / FACTS_PER_FAMILY))
        tmp = path.with_suffix(".tmp")
        info = write_files(families=families, seed=seed, out_path=tmp)
        tmp.replace(path)
        meta.write_text(json.dumps(info))
    info = json.loads(meta.read_text())
    return path, int(info["facts"])


def iter_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from f


def sample_kks(path: Path, k: int, seed: int = 3) -> list[str]:
    """Clear family card numbers that have orders (reservoir sample over the file)."""
    import random

    import orjson

    rng = random.Random(seed)
    seen: dict[str, None] = {}
    for raw in iter_lines(path):
        if b'"disbursement.ordered"' in raw:
            seen.setdefault(orjson.loads(raw)["kk"], None)
    kks = list(seen)
    return rng.sample(kks, min(k, len(kks)))


# ----------------------------------------------------------------- PostgreSQL
def _admin():
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)


def pg_url(dbname: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def create_db(name: str) -> str:
    """(Re)create database `jejak_bench_<name>`; returns its name."""
    dbname = name if name.startswith(DB_PREFIX) else DB_PREFIX + name
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return dbname


def drop_db(dbname: str) -> None:
    assert dbname.startswith(DB_PREFIX), dbname
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def db_exists(dbname: str) -> bool:
    with _admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


#: Databases these scripts create (other engineers also use `jejak_bench_*` names:
#: never drop those).
OWN_DB_RE = r"^jejak_bench_(ingest|cli|floor|plain_es|abl|prof|proj|exp)_"


def list_bench_dbs() -> list[str]:
    import re

    with _admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'jejak\\_bench\\_%'").fetchall()
    return [r[0] for r in rows if re.match(OWN_DB_RE, r[0])]


def drop_all_bench_dbs() -> list[str]:
    names = list_bench_dbs()
    for n in names:
        drop_db(n)
    return names


def pg_db_size(dbname: str) -> int:
    with _admin() as conn:
        return int(conn.execute("SELECT pg_database_size(%s)", (dbname,)).fetchone()[0])


# ---------------------------------------------------------------- jejak stores
@dataclass
class BenchStore:
    """A jejak store (SQLite file or PG database) with its own keys directory."""

    kind: str  # "sqlite" | "postgresql"
    name: str
    url: str
    keys_dir: Path
    dbname: str | None = None
    path: Path | None = None

    def settings(self, **overrides: Any):
        from jejak.settings import Settings

        return Settings(store=self.url, keys_dir=self.keys_dir, **overrides)

    def env(self) -> dict[str, str]:
        """Environment for a `jejak` subprocess on this store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
        env.update(JEJAK_STORE=self.url, JEJAK_KEYS_DIR=str(self.keys_dir))
        return env

    def drop(self) -> None:
        if self.kind == "postgresql" and self.dbname:
            drop_db(self.dbname)
        elif self.path is not None:
            for p in self.path.parent.glob(self.path.name + "*"):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        shutil.rmtree(self.keys_dir, ignore_errors=True)

    def size_bytes(self) -> int | None:
        if self.kind == "postgresql" and self.dbname:
            return pg_db_size(self.dbname)
        if self.path is not None and self.path.exists():
            return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return None


def store_for(kind: str, name: str, *, fresh: bool = True) -> BenchStore:
    """A store named `name` (fresh = emptied first)."""
    stores = DATA / "stores"
    stores.mkdir(parents=True, exist_ok=True)
    keys = stores / f"{name}.keys"
    if kind == "sqlite":
        path = stores / f"{name}.db"
        s = BenchStore("sqlite", name, str(path), keys, path=path)
        if fresh:
            s.drop()
        return s
    if kind == "postgresql":
        dbname = DB_PREFIX + name
        if fresh:
            shutil.rmtree(keys, ignore_errors=True)
            create_db(dbname)
        return BenchStore("postgresql", name, pg_url(dbname), keys, dbname=dbname)
    raise ValueError(kind)


def store_exists(kind: str, name: str) -> bool:
    s = store_for(kind, name, fresh=False)
    if kind == "sqlite":
        return s.path is not None and s.path.exists() and s.keys_dir.exists()
    return s.keys_dir.exists() and db_exists(s.dbname or "")


# --------------------------------------------------------------------- timing
@dataclass
class Timer:
    seconds: float = 0.0
    _t0: float = field(default=0.0, repr=False)

    def __enter__(self) -> "Timer":
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def peak_rss_self_mb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Run a command; wall seconds, exit code, stdout, and *its own* peak RSS.

    The peak comes from GNU time when installed: a child forked from this
    (possibly large) bench process starts out sharing its pages, and Linux
    counts them in the child's ru_maxrss before the exec (a 1 GB bench
    process made a 100 MB `jejak rebuild` report 1.5 GB). Without GNU time,
    os.wait4's figure is an upper bound."""
    gnu_time = Path("/usr/bin/time")
    rss_file = None
    if gnu_time.exists():
        import tempfile

        fd, rss_file = tempfile.mkstemp(prefix="jejak-bench-rss-")
        os.close(fd)
        cmd = [str(gnu_time), "-f", "%M", "-o", rss_file, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    # Read pipes to completion (outputs here are small), then reap with wait4.
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    peak_kb = usage.ru_maxrss
    if rss_file:
        try:
            peak_kb = int(Path(rss_file).read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            pass
        finally:
            os.unlink(rss_file)
    return {
        "seconds": seconds,
        "returncode": proc.returncode,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace")[-2000:],
        "peak_rss_mb": peak_kb / 1024,
    }


def jejak_cmd() -> list[str]:
    """`jejak` CLI in a subprocess (the plain entry point)."""
    return [sys.executable, "-c", "import sys; sys.argv[0] = 'jejak'; from jejak.cli import main; main()"]


# ---------------------------------------------------------------- profiling
def profile_top(fn: Callable[[], Any], top: int = 12) -> tuple[Any, list[dict[str, Any]]]:
    """Run fn under cProfile; the top functions by own (tottime) time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    out = prof.runcall(fn)
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({
            "function": f"{_short(file)}:{line}({name})", "calls": nc,
            "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3), "share_of_total": round(tt / total, 3) if total else 0,
        })
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return out, rows[:top]


def _short(file: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


# ------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    pg_version = None
    with contextlib.suppress(Exception):
        with _admin() as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
    }
    for mod in ("eventsourcing", "psycopg", "orjson", "cryptography"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[mod] = version(mod)
    return {
        "code": code_state(),
        "nproc": nproc, "cpu": cpu, "ram_gb": mem_gb, "kernel": platform.release(),
        "versions": versions, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "shared machine: other test suites ran concurrently; compare ratios within one run",
    }


def code_state() -> dict[str, Any]:
    """HEAD and the non-bench files modified in the working tree (others edit concurrently)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
             if line[3:] and not line[3:].startswith("bench/")]
    return {"head": git("rev-parse", "--short", "HEAD").strip(), "modified_files": dirty,
            "diff_sha1": __import__("hashlib").sha1(git("diff", "HEAD", "--", ".", ":!bench").encode()).hexdigest()[:12]}


# ------------------------------------------------------------------- output
def save_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def emit(name: str, result: dict[str, Any]) -> None:
    path = save_result(name, result)
    print(json.dumps(result, indent=2, default=str))
    print(f"# saved {path.relative_to(ROOT)}", file=sys.stderr)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description="bench helpers")
    ap.add_argument("--drop-all", action="store_true", help="drop the jejak_bench_* databases these scripts made, and bench stores")
    ap.add_argument("--machine", action="store_true")
    ap.add_argument("--drop-stores", help="comma-separated bench store names to drop (both kinds)")
    ap.add_argument("--generate", type=int, help="generate the facts file of about N facts")
    a = ap.parse_args()
    if a.machine:
        print(json.dumps(machine(), indent=2))
    if a.generate:
        print(facts_file(a.generate))
    if a.drop_stores:
        for name in a.drop_stores.split(","):
            for kind in ("sqlite", "postgresql"):
                with contextlib.suppress(Exception):
                    store_for(kind, name.strip(), fresh=False).drop()
    if a.drop_all:
        print(json.dumps({"dropped": drop_all_bench_dbs()}))
        # only this suite's stores and keys (bench/api.py etc. keep theirs here too)
        import re

        own = re.compile(OWN_DB_RE.replace("^jejak_bench_", "^"))
        for p in (DATA / "stores").glob("*"):
            if own.match(p.name):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
