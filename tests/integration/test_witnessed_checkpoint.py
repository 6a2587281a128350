"""`jejak checkpoint --policy`: the log as a C2SP tlog-witness client against three
real `jejak witness serve` processes; `jejak verify` with the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from jejak.audit.policy import Policy
from jejak.cli import app
from jejak.generate import write_files
from jejak.store.datastore import Store
from jejak.witnessing import MEMORY_FILE
from tests.witness_support import WitnessProcess, init_witness, run_jejak

NAMES = ("W1", "W2", "W3")


def _jejak(store_url: str, keys: Path, *args: str, stdin: bytes | None = None, policy: Path | None = None):
    env = {"JEJAK_KEYS_DIR": str(keys), "JEJAK_STORE": None,
           "JEJAK_WITNESS_POLICY": None if policy is None else str(policy)}
    return CliRunner().invoke(app, ["--store", store_url, *args], input=stdin, env=env, catch_exceptions=False)


class Deployment:
    def __init__(self, tmp: Path, store_url: str) -> None:
        self.tmp, self.store_url, self.keys = tmp, store_url, tmp / "keys"
        facts = tmp / "facts.jsonl"
        write_files(families=3, seed=21, out_path=facts)
        self.lines = facts.read_bytes().splitlines(keepends=True)
        self.fed = 0
        self.feed(len(self.lines) // 3)
        log_key = _jejak(store_url, self.keys, "key").stdout.strip()
        self.witnesses: dict[str, WitnessProcess] = {}
        self.vkeys: dict[str, str] = {}
        for i, name in enumerate(NAMES):
            state = tmp / f"witness-{name}"
            self.vkeys[name] = init_witness(state, f"witness.test/{name.lower()}")
            assert run_jejak("witness", "add-log", "--state", str(state), log_key).returncode == 0
            self.witnesses[name] = WitnessProcess(state).start()
        self.policy = tmp / "policy.txt"
        self.policy.write_text(
            f"log {log_key}\n"
            + "".join(f"witness {n} {self.vkeys[n]} {self.witnesses[n].url}\n" for n in NAMES)
            + "group two-of-three 2 W1 W2 W3\nquorum two-of-three\n")
        self.log_key = log_key

    def feed(self, count: int) -> None:
        chunk = self.lines[self.fed:self.fed + count]
        self.fed += count
        assert _jejak(self.store_url, self.keys, "ingest", "-", stdin=b"".join(chunk)).exit_code == 0

    def checkpoint(self, policy: Path | None = None):
        return _jejak(self.store_url, self.keys, "checkpoint", "--policy", str(policy or self.policy))

    def recorded(self) -> list[str]:
        store = Store.open(self.store_url, create=False)
        try:
            return [r["note"] for r in store.query("SELECT note FROM jejak_checkpoints ORDER BY seq")]
        finally:
            store.close()

    def stop(self) -> None:
        for w in self.witnesses.values():
            w.stop()


@pytest.fixture(params=["sqlite"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    url = str(tmp_path / "jejak.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    d = Deployment(tmp_path, url)
    try:
        yield d
    finally:
        d.stop()


def _cosigners(note: str) -> list[str]:
    return [line.split(" ")[1] for line in note.split("\n\n", 1)[1].splitlines()]


@pytest.mark.parametrize("deployment", ["sqlite", "postgresql"], indirect=True)
def test_two_of_three_with_one_witness_down_then_not_with_two(deployment: Deployment) -> None:
    d = deployment
    d.witnesses["W2"].stop()
    ok = d.checkpoint()
    assert ok.exit_code == 0, ok.stderr
    # log signature first, then W1 and W3 in policy order
    assert _cosigners(ok.stdout) == [d.log_key.split("+")[0], "witness.test/w1", "witness.test/w3"]
    assert Policy.parse(d.policy.read_text()).verify_quorum(ok.stdout) == ["W1", "W3"]
    assert d.recorded() == [ok.stdout]

    d.feed(len(d.lines) // 3)
    d.witnesses["W3"].stop()
    refused = d.checkpoint()
    assert refused.exit_code == 4, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert "W2: no cosignature: unreachable" in refused.stderr and "W3: no cosignature: unreachable" in refused.stderr
    assert "W1: cosigned" in refused.stderr
    assert d.recorded() == [ok.stdout], "nothing recorded without the quorum"


def test_a_witness_answering_409_does_not_block_the_others(deployment: Deployment) -> None:
    d = deployment
    first = d.checkpoint()
    assert first.exit_code == 0, first.stderr
    assert len(_cosigners(first.stdout)) == 4
    memory = d.keys / MEMORY_FILE
    sizes = json.loads(memory.read_text())
    assert set(sizes["jejak.local/bansos"].values()) == {int(first.stdout.split("\n")[1])}
    # the log forgets what W1 cosigned: it sends old 0, W1 answers 409 with its size, the retry succeeds
    forgotten = {k: v for k, v in sizes["jejak.local/bansos"].items() if not k.startswith("witness.test/w1+")}
    memory.write_text(json.dumps({"jejak.local/bansos": forgotten}))
    d.feed(len(d.lines) // 3)
    second = d.checkpoint()
    assert second.exit_code == 0, second.stderr
    assert _cosigners(second.stdout)[1:] == ["witness.test/w1", "witness.test/w2", "witness.test/w3"]
    assert d.recorded() == [first.stdout, second.stdout]
    # with the policy configured, verify checks the recorded cosignatures
    verify = _jejak(d.store_url, d.keys, "verify", policy=d.policy)
    assert verify.exit_code == 0, verify.stdout + verify.stderr


def test_verify_catches_a_forged_cosignature(deployment: Deployment) -> None:
    d = deployment
    ok = d.checkpoint()
    assert ok.exit_code == 0, ok.stderr
    text, sigs = ok.stdout.split("\n\n", 1)
    lines = sigs.splitlines(keepends=True)
    name, b64 = lines[2].rstrip("\n").rsplit(" ", 1)
    flipped = b64[:20] + ("A" if b64[20] != "A" else "B") + b64[21:]
    forged = text + "\n\n" + "".join(lines[:2]) + f"{name} {flipped}\n" + "".join(lines[3:])
    store = Store.open(d.store_url, create=False)
    try:
        with store.transaction(commit=True) as cursor:
            store.execute(cursor, "UPDATE jejak_checkpoints SET note = ?", (forged,))
    finally:
        store.close()
    assert _jejak(d.store_url, d.keys, "verify").exit_code == 0  # without the policy: the log signature holds
    bad = _jejak(d.store_url, d.keys, "verify", policy=d.policy)
    assert bad.exit_code == 1, bad.stdout + bad.stderr
    assert "does not verify" in json.loads(bad.stdout.strip().splitlines()[-1])["error"]
    # stripping every cosignature leaves the latest checkpoint without its quorum
    store = Store.open(d.store_url, create=False)
    try:
        with store.transaction(commit=True) as cursor:
            store.execute(cursor, "UPDATE jejak_checkpoints SET note = ?", (text + "\n\n" + lines[0],))
    finally:
        store.close()
    stripped = _jejak(d.store_url, d.keys, "verify", policy=d.policy)
    assert stripped.exit_code == 1 and "quorum" in stripped.stdout, stripped.stdout


@pytest.mark.parametrize("mutate, problem", [
    (lambda text, d: text.replace(f"witness W1 {d.vkeys['W1']}", f"witness W1 {d.log_key}"), "expected 0x04"),
    (lambda text, d: text.replace("quorum two-of-three\n", ""), "no quorum line"),
    (lambda text, d: text.replace("group two-of-three 2", "group two-of-three 4"), "threshold"),
    (lambda text, d: text.replace(f"log {d.log_key}", "log " + d.log_key.replace("jejak.local", "other.local", 1)
                                  .split("+")[0] + "+" + "+".join(d.log_key.split("+")[1:])), "verifier key"),
])
def test_unusable_policies_exit_2(deployment: Deployment, mutate, problem: str) -> None:
    d = deployment
    bad = d.tmp / "bad-policy.txt"
    bad.write_text(mutate(d.policy.read_text(), d))
    res = d.checkpoint(bad)
    assert res.exit_code == 2, res.stdout + res.stderr
    assert problem in res.stderr, res.stderr
    assert d.recorded() == []


def test_policy_for_another_log_exits_2(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    other_keys = tmp_path / "other-keys"
    assert _jejak(str(tmp_path / "other.db"), other_keys, "init").exit_code == 0
    other = _jejak(str(tmp_path / "other.db"), other_keys, "key").stdout.strip()
    bad = d.tmp / "other-policy.txt"
    bad.write_text(d.policy.read_text().replace(f"log {d.log_key}", f"log {other}"))
    res = d.checkpoint(bad)
    assert res.exit_code == 2 and "must name this log's key" in res.stderr, res.stderr
    assert d.recorded() == []


def test_witness_without_url_counts_as_absent(deployment: Deployment) -> None:
    d = deployment
    text = d.policy.read_text()
    for name in ("W2", "W3"):
        text = text.replace(f" {d.witnesses[name].url}\n", "\n")
    only_one = d.tmp / "one-url.txt"
    only_one.write_text(text)
    res = d.checkpoint(only_one)
    assert res.exit_code == 4 and "W2: no cosignature: no URL in the policy" in res.stderr, res.stderr
    assert d.recorded() == []


def _serve_checkpoint(d: Deployment, policy: Path | None) -> str:
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.witness_support import free_port

    port = free_port()
    env = {**os.environ, "JEJAK_KEYS_DIR": str(d.keys), "JEJAK_STORE": d.store_url}
    env.pop("JEJAK_WITNESS_POLICY", None)
    if policy is not None:
        env["JEJAK_WITNESS_POLICY"] = str(policy)
    proc = subprocess.Popen([sys.executable, "-m", "jejak.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                res = httpx.get(f"http://127.0.0.1:{port}/public/v1/checkpoint.txt", timeout=5)
                return res.text
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("jejak serve did not start")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_publishes_only_cosigned_checkpoints_under_a_policy(deployment: Deployment) -> None:
    d = deployment
    witnessed = d.checkpoint()
    assert witnessed.exit_code == 0, witnessed.stderr
    d.feed(len(d.lines) // 3)
    plain = _jejak(d.store_url, d.keys, "checkpoint")  # no policy: signed by the log alone
    assert plain.exit_code == 0 and len(_cosigners(plain.stdout)) == 1
    assert d.recorded() == [witnessed.stdout, plain.stdout]
    assert _serve_checkpoint(d, d.policy) == witnessed.stdout
    assert _serve_checkpoint(d, None) == plain.stdout


def test_a_witness_holding_a_fork_is_named_and_the_others_suffice(deployment: Deployment) -> None:
    import sqlite3

    d = deployment
    first = d.checkpoint()
    assert first.exit_code == 0, first.stderr
    d.feed(len(d.lines) // 3)
    store = Store.open(d.store_url, create=False)
    try:
        size = store.head()[0]
    finally:
        store.close()
    # W1 has cosigned another tree of the size the log is about to sign
    with sqlite3.connect(d.witnesses["W1"].state / "witness.db") as db:
        db.execute("UPDATE logs SET size = ?, root = ?", (size, bytes(range(32))))
    second = d.checkpoint()
    assert second.exit_code == 0, second.stderr
    assert "witness W1: no cosignature: 409: it cosigned another tree of this size (fork?)" in second.stderr
    assert _cosigners(second.stdout)[1:] == ["witness.test/w2", "witness.test/w3"]
    assert d.recorded() == [first.stdout, second.stdout]


def _set_note(d: Deployment, seq: int, note: str) -> None:
    store = Store.open(d.store_url, create=False)
    try:
        with store.transaction(commit=True) as cursor:
            store.execute(cursor, "UPDATE jejak_checkpoints SET note = ? WHERE seq = ?", (note, seq))
    finally:
        store.close()


def test_once_witnessed_every_later_checkpoint_must_be(deployment: Deployment) -> None:
    d = deployment
    plain = _jejak(d.store_url, d.keys, "checkpoint")  # before the policy: the log's signature only
    assert plain.exit_code == 0
    d.feed(len(d.lines) // 3)
    first = d.checkpoint()
    d.feed(len(d.lines) // 3)
    second = d.checkpoint()
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    state = json.loads((d.keys / "checkpoint-state.json").read_text())["jejak.local/bansos"]
    assert state["witnessed_since"] == 1
    assert _jejak(d.store_url, d.keys, "verify", policy=d.policy).exit_code == 0  # #0 predates the policy
    # an insider strips the cosignatures of the first witnessed checkpoint
    _set_note(d, 1, first.stdout.split("\n\n")[0] + "\n\n" + first.stdout.split("\n\n")[1].splitlines(True)[0])
    bad = _jejak(d.store_url, d.keys, "verify", policy=d.policy)
    assert bad.exit_code == 1, bad.stdout + bad.stderr
    assert "checkpoint #1" in bad.stdout and "quorum" in bad.stdout, bad.stdout
