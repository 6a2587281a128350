"""The commands as production runs them, end to end as processes (issue 22, point 7).

`jejak feed publish` and `jejak feed consume` without `--once` (what
docker-compose runs: long-running, retrying until the broker is there, stopped
by SIGTERM with a clean exit), `jejak reconcile --bootstrap` publishing to
`jejak.reconciliation`, `jejak key --rotate` / `--all`, and `jejak generate`
itself. Real broker (Tansu) and real SQLite store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from jejak.feeds.cloudevents import OUTBOUND_TYPES, decode, encode
from jejak.generate import RULES, write_files
from jejak.ledger import Ledger
from jejak.settings import Settings
from tests.integration.kafka_broker import TansuBroker, free_port
from tests.integration.test_feeds_kafka import produce, read_topic, recorded_ids

KEEP = {"rates.set", "eligibility.decided", "companion.assigned", "disbursement.ordered"}
TIMEOUT = 120  # any one CLI process or wait


class Cli:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = str(root / "jejak.db")
        self.keys = root / "keys"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
        self.env.update(JEJAK_STORE=self.store, JEJAK_KEYS_DIR=str(self.keys))

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jejak.cli", *args], input=stdin, capture_output=True,
                              env=self.env, cwd=self.root, timeout=TIMEOUT)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "jejak.cli", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env, cwd=self.root)

    def ingest(self, lines: list[bytes]) -> None:
        res = self.run("ingest", "-", stdin=b"\n".join(lines) + b"\n")
        assert res.returncode == 0, res.stderr[-2000:]

    def ids(self, fact_type: str) -> list[str]:
        with Ledger.open(Settings(store=self.store, keys_dir=self.keys)) as ledger:
            return recorded_ids(ledger, fact_type)


def stop_cleanly(proc: subprocess.Popen) -> dict[str, Any]:
    """SIGTERM, as docker stop sends it: the process exits 0 and prints its counts."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in err, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def wait_for(pred, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if pred():
            return
        assert proc is None or proc.poll() is None, f"the process exited while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def registry_and_orders(root: Path, families: int, seed: int) -> tuple[list[bytes], list[dict[str, Any]]]:
    path = root / f"generated-{seed}.jsonl"
    write_files(families=families, seed=seed, out_path=path)
    kept = [x for x in path.read_bytes().splitlines() if x.strip() and orjson.loads(x)["type"] in KEEP]
    return kept, [f for f in map(orjson.loads, kept) if f["type"] == "disbursement.ordered"]


def settlement_for(order: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{order['channel'].lower()}:stl:{order['id']}", "type": "disbursement.settled",
            "at": (datetime.fromisoformat(order["at"]) + timedelta(days=2)).isoformat(),
            "source": {"kind": "bank", "id": order["channel"]}, "disbursement": order["id"],
            "status": "credited", "amount": order["amount"], "channel": order["channel"]}


def published_ids(bootstrap: str, channel: str, at_least: int) -> list[str]:
    return sorted(decode(r.value, OUTBOUND_TYPES).id for r in read_topic(bootstrap, f"jejak.disbursements.{channel}",
                                                                          at_least=at_least))


def test_feed_publish_and_consume_run_until_sigterm(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    lines, orders = registry_and_orders(tmp_path, families=6, seed=1)
    cli.ingest(lines)
    bri = [o for o in orders if o["channel"] == "BRI"]
    assert len(bri) >= 3
    broker = TansuBroker(port=free_port())
    publisher = cli.start("feed", "publish", "--bootstrap", broker.bootstrap)
    consumer = None
    try:
        # no broker yet: the publisher keeps retrying instead of exiting
        wait_for(lambda: b"retrying" in _peek_stderr(publisher), "the publisher's retry", publisher)
        broker.start()
        assert published_ids(broker.bootstrap, "BRI", len(bri)) == sorted(o["id"] for o in bri)

        # it keeps following the log: orders recorded later are published too
        later_bri = [{**o, "id": o["id"] + ":late"} for o in bri[:2]]
        cli.ingest([orjson.dumps(o) for o in later_bri])
        want = sorted(o["id"] for o in bri + later_bri)
        wait_for(lambda: published_ids(broker.bootstrap, "BRI", len(want)) == want, "the later orders", publisher)

        consumer = cli.start("feed", "consume", "--bootstrap", broker.bootstrap)
        settlements = [settlement_for(o) for o in bri]
        produce(broker.bootstrap, "jejak.settlements", [encode(s, "bank/BRI") for s in settlements],
                [s["id"].encode() for s in settlements])
        wait_for(lambda: sorted(cli.ids("disbursement.settled")) == sorted(s["id"] for s in settlements),
                 "the settlements in the real ledger", consumer)
        consumed = stop_cleanly(consumer)
        consumer = None
        assert consumed == {"accepted": len(settlements), "duplicates": 0, "rejected": 0}
        published = stop_cleanly(publisher)
        assert published["published"] == len(orders) + len(later_bri), published
        res = cli.run("verify")
        assert res.returncode == 0 and json.loads(res.stdout)["intact"] is True
    finally:
        for proc in (publisher, consumer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
        broker.close()


_stderr_seen: dict[int, bytes] = {}


def _peek_stderr(proc: subprocess.Popen) -> bytes:
    """What the process wrote to stderr so far (read without blocking)."""
    import fcntl

    fd = proc.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 1 << 16)
    except BlockingIOError:
        chunk = b""
    _stderr_seen[proc.pid] = _stderr_seen.get(proc.pid, b"") + chunk
    return _stderr_seen[proc.pid]


def test_reconcile_publishes_its_reports_to_the_reconciliation_topic(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    lines, orders = registry_and_orders(tmp_path, families=6, seed=3)
    bri = [o for o in orders if o["channel"] == "BRI"]
    cli.ingest(lines + [orjson.dumps(settlement_for(o)) for o in bri])
    with TansuBroker() as broker:
        res = cli.run("reconcile", "--channel", "BRI", "--bootstrap", broker.bootstrap)
        assert res.returncode == 0, res.stderr[-2000:]
        reports = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
        assert reports and sum(r["orders"] for r in reports) == len(bri)
        recs = read_topic(broker.bootstrap, "jejak.reconciliation", at_least=len(reports))
    assert sorted((r.key.decode(), orjson.loads(r.value)) for r in recs) == sorted(
        (f"BRI:{r['period']}", r) for r in reports)


def test_key_rotate_and_all(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    lines, _ = registry_and_orders(tmp_path, families=3, seed=4)
    cli.ingest(lines[: len(lines) // 2])
    first = cli.run("key")
    assert first.returncode == 0, first.stderr
    old_key = first.stdout.decode().strip()
    old_cp = cli.run("checkpoint")
    assert old_cp.returncode == 0, old_cp.stderr

    rotated = cli.run("key", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.decode().strip()
    assert new_key != old_key and new_key.split("+")[0] == old_key.split("+")[0]
    assert cli.run("key").stdout.decode().strip() == new_key
    assert cli.run("key", "--all").stdout.decode().split() == [old_key, new_key]

    cli.ingest(lines[len(lines) // 2:])
    new_cp = cli.run("checkpoint")
    assert new_cp.returncode == 0, new_cp.stderr
    signatures = {line.split(" ")[2] for line in new_cp.stdout.decode().splitlines() if line.startswith("— ")}
    assert len(signatures) == 1
    verify = cli.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["checkpoints"] == 2  # the old one still verifies under the old key
    for cp, key, other in ((old_cp, old_key, new_key), (new_cp, new_key, old_key)):
        (tmp_path / "cp.txt").write_bytes(cp.stdout)
        (tmp_path / "key.txt").write_text(key + "\n")
        export = cli.run("export")
        (tmp_path / "export.jsonl").write_bytes(b"\n".join(export.stdout.splitlines()[: int(cp.stdout.split(b"\n")[1])]) + b"\n")
        ok = cli.run("audit", "verify-export", "export.jsonl", "--checkpoint", "cp.txt", "--key", "key.txt")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        (tmp_path / "key.txt").write_text(other + "\n")
        wrong = cli.run("audit", "verify-export", "export.jsonl", "--checkpoint", "cp.txt", "--key", "key.txt")
        assert wrong.returncode == 1, "signed by exactly the key it names"


def test_generate_command(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    res = cli.run("generate", "--families", "100", "--seed", "7", "--plant", "--out", "facts.jsonl",
                  "--expected", "expected.jsonl")
    assert res.returncode == 0, res.stderr
    facts = (tmp_path / "facts.jsonl").read_bytes()
    assert cli.run("generate", "--families", "100", "--seed", "7", "--plant").stdout == facts, "same seed, same bytes"
    assert cli.run("generate", "--families", "100", "--seed", "8", "--plant").stdout != facts
    ing = cli.run("ingest", "facts.jsonl")
    assert ing.returncode == 0, ing.stderr[-2000:]
    assert json.loads(ing.stdout)["rejected"] == 0 and json.loads(ing.stdout)["accepted"] == len(facts.splitlines())
    found = {(a["rule"], a["primary"]) for a in map(json.loads, cli.run("anomalies").stdout.splitlines())}
    expected = [json.loads(x) for x in (tmp_path / "expected.jsonl").read_text().splitlines() if x.strip()]
    assert found == {(e["rule"], e["primary"]) for e in expected}
    assert {rule for rule, _ in found} == set(RULES), "every rule is planted"

