"""C2SP tlog-tiles at scale: `jejak tiles` and `jejak monitor` vs hashing the leaves alone.

    python bench/tiles.py --entries 1000000 [--store postgresql://…] [--keep DIR]

Builds a store of N entries (raw leaves of about 300 bytes, appended through
the recorder as ingest does, without fact validation), issues a checkpoint, then:
  tiles      TilesWriter from nothing: tiles and bundles written per second;
  rerun      the same with nothing new (what a cron job pays each time);
  grow       1% more entries, a new checkpoint, TilesWriter again;
  monitor    Monitor from an empty state over the tile directory (every entry checked);
  floor      hashing the same leaves in memory (leaf hashes and the tree's root) alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jejak.audit.merkle import leaf_hash, root_from_leaf_hashes  # noqa: E402
from jejak.audit.note import Signer  # noqa: E402
from jejak.monitor import DirFetcher, Monitor  # noqa: E402
from jejak.settings import Settings  # noqa: E402
from jejak.store.datastore import Store  # noqa: E402
from jejak.tiles import TilesWriter  # noqa: E402
from jejak.transparency import Transparency  # noqa: E402

BATCH = 20000
NAME = "bench.jejak/tiles"


def leaf(i: int) -> bytes:
    pad = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return (f'{{"derived":{{}},"fact":{{"amount":{750000 + i % 1000},"id":"bench-{i}","kk":"tk1_{pad[:40]}",'
            f'"nik":"tk1_{pad[24:64]}","period":"2024-T1","program":"PKH","type":"disbursement.ordered",'
            f'"source":{{"id":"sp2d","kind":"kemensos"}},"at":"2024-03-05T10:00:00+07:00"}},"v":1}}').encode()


def append(store: Store, start: int, stop: int) -> None:
    for first in range(start, stop, BATCH):
        last = min(stop, first + BATCH)
        oids = [uuid.UUID(int=i + 1).hex for i in range(first, last)]
        leaves = [leaf(i) for i in range(first, last)]
        with store.transaction(commit=True) as cursor:
            store.recorder.take_write_lock(cursor)
            store.recorder.insert_stored(cursor, [(o, 1, "bench", x) for o, x in zip(oids, leaves)])
            store.recorder.append_to_log(cursor, [(f"b-{first + k}", o, 1, x)
                                                  for k, (o, x) in enumerate(zip(oids, leaves))])


def timed(what: str, fn):
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(f"{what:<10} {dt:8.2f} s", flush=True)
    return out, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--store", default=None, help="store URL (default: a SQLite file in a temp dir)")
    ap.add_argument("--keep", default=None, help="work directory to keep (default: a temp dir, removed)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="jejak-bench-tiles-"))
    work.mkdir(parents=True, exist_ok=True)
    keys = work / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    ring = keys / "checkpoint-keys.json"
    if not ring.exists():
        ring.write_text(json.dumps({"keys": [{"skey": Signer.generate(NAME).key_text(), "created": "bench"}]}))
        ring.chmod(0o600)
    settings = Settings(store=args.store or str(work / "bench.db"), keys_dir=keys, origin=NAME, key_name=NAME)
    n, grown = args.entries, args.entries + args.entries // 100
    store = Store.open(settings.store)
    results: dict[str, float] = {}
    try:
        have = store.log_size()
        if have < n:
            timed("build", lambda: append(store, have, n))
        transparency = Transparency(store, settings)
        _, results["checkpoint"] = timed("checkpoint", transparency.issue_checkpoint)
        out = work / "tiles"
        shutil.rmtree(out, ignore_errors=True)
        first, results["tiles"] = timed("tiles", lambda: TilesWriter(store, settings, out).run())
        _, results["rerun"] = timed("rerun", lambda: TilesWriter(store, settings, out).run())
        append(store, n, grown)
        transparency.issue_checkpoint()
        more, results["grow"] = timed("grow", lambda: TilesWriter(store, settings, out).run())
        vkey = transparency.keyring().current_signer().verifier_key_text()
        state = work / "monitor-state"
        shutil.rmtree(state, ignore_errors=True)
        watched, results["monitor"] = timed("monitor", lambda: Monitor(DirFetcher(out), [vkey], state).check())
        assert watched.exit_code == 0, watched.summary()
        leaves = [leaf(i) for i in range(grown)]
        _, results["floor"] = timed("floor", lambda: root_from_leaf_hashes([leaf_hash(x) for x in leaves]))
    finally:
        store.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    files = first.written
    print(json.dumps({
        "entries": n, "store": "postgresql" if settings.store.startswith("postgresql") else "sqlite",
        "tiles_files_first_run": files, "files_per_s": round(files / results["tiles"]),
        "entries_per_s_tiles": round(n / results["tiles"]), "rerun_s": round(results["rerun"], 3),
        "grow_files": more.written, "grow_s": round(results["grow"], 2),
        "monitor_entries_per_s": round(grown / results["monitor"]),
        "monitor_vs_floor": round(results["monitor"] / results["floor"], 2), "cores": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
