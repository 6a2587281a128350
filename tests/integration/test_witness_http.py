"""The witness (`jejak witness init/add-log/serve`) over real HTTP: every C2SP
tlog-witness v1.0.0 status code, forks, and state kept across a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from jejak.audit.cosignature import CosignatureVerifier
from tests.witness_support import ToyLog, WitnessProcess, init_witness, run_jejak

ORIGIN = "example.org/toy-log"


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[tuple[WitnessProcess, CosignatureVerifier, ToyLog]]:
    state = tmp_path / "witness"
    vkey = init_witness(state, "witness.test/w1")
    log = ToyLog.named(ORIGIN)
    added = run_jejak("witness", "add-log", "--state", str(state), log.signer.verifier_key_text())
    assert added.returncode == 0, added.stderr
    proc = WitnessProcess(state).start()
    try:
        yield proc, CosignatureVerifier.from_key_text(vkey), log
    finally:
        proc.stop()


def _cosigned(res, verifier: CosignatureVerifier, log: ToyLog, size: int) -> None:
    assert res.status_code == 200, (res.status_code, res.text)
    lines = res.text.splitlines(keepends=True)
    assert lines and all(line.startswith("\u2014 ") and line.endswith("\n") for line in lines)
    text = log.note(size).split("\n\n")[0] + "\n"
    assert any(verifier.matches(_parse(line)) and verifier.verify(text, line) > 0 for line in lines)


def _parse(line: str):
    from jejak.audit.cosignature import parse_cosignature_line

    return parse_cosignature_line(line)


def _conflict(res, size: int) -> None:
    assert res.status_code == 409, (res.status_code, res.text)
    assert res.headers["content-type"] == "text/x.tlog.size"
    assert res.text == f"{size}\n"


def _forked(res) -> None:
    assert res.status_code == 409, (res.status_code, res.text)
    assert not res.headers["content-type"].startswith("text/x.tlog.size")
    assert "fork" in res.text


def test_init_prints_a_cosignature_key_last_and_never_overwrites(tmp_path: Path) -> None:
    state = tmp_path / "w"
    vkey = init_witness(state, "witness.test/w9")
    verifier = CosignatureVerifier.from_key_text(vkey)
    assert verifier.name == "witness.test/w9"
    key_before = (state / "witness.key").read_bytes()
    assert (state / "witness.key").stat().st_mode & 0o077 == 0
    again = run_jejak("witness", "init", "--name", "other", "--state", str(state))
    assert again.returncode == 2 and "already holds a witness" in again.stderr
    assert (state / "witness.key").read_bytes() == key_before
    # a witness key is not a log key
    bad = run_jejak("witness", "add-log", "--state", str(state), vkey)
    assert bad.returncode == 2 and "expected 0x01" in bad.stderr, bad.stderr
    nowhere = run_jejak("witness", "add-log", "--state", str(tmp_path / "none"),
                        ToyLog.named(ORIGIN).signer.verifier_key_text())
    assert nowhere.returncode == 2 and "holds no witness" in nowhere.stderr


def test_status_codes(witness) -> None:
    proc, verifier, log = witness
    log.grow(5)
    # 404: unknown origin
    stranger = ToyLog.named("example.org/other-log").grow(3)
    assert proc.post(stranger.request(0)).status_code == 404
    # 403: the right origin signed by a key the witness does not trust
    impostor = ToyLog.named(ORIGIN, seed="impostor").grow(5)
    assert proc.post(impostor.request(0)).status_code == 403
    # 400: malformed requests, and an old size above the checkpoint size
    assert proc.post(b"old 0\n" + log.note().encode()).status_code == 400  # no empty line
    assert proc.post(b"old 00\n\n" + log.note().encode()).status_code == 400
    assert proc.post(b"old 0\nnot base64!\n\n" + log.note().encode()).status_code == 400
    assert proc.post(log.request(6, 5, proof=[])).status_code == 400
    # 422: old 0 with a proof
    assert proc.post(log.request(0, 5, proof=[bytes(32)])).status_code == 422
    # 200: old 0, empty proof
    _cosigned(proc.post(log.request(0)), verifier, log, 5)
    # 409: old size not the one cosigned; body = that size
    log.grow(8)
    _conflict(proc.post(log.request(0)), 5)
    _conflict(proc.post(log.request(3)), 5)
    # 422: a proof that does not verify
    assert proc.post(log.request(5, 8, proof=log.proof(4, 8))).status_code == 422
    # 200 with the right proof; the same checkpoint again is cosigned again
    _cosigned(proc.post(log.request(5)), verifier, log, 8)
    _cosigned(proc.post(log.request(8)), verifier, log, 8)


def test_fork_is_refused(witness) -> None:
    proc, verifier, log = witness
    log.grow(6)
    _cosigned(proc.post(log.request(0)), verifier, log, 6)
    fork = ToyLog(log.signer, tag="b").grow(6)  # same key, other entries
    # same size, other root: 409, told apart from a stale old size by its content type
    _forked(proc.post(fork.request(6)))
    # the fork grown further: its own proof does not lead from the cosigned root
    fork.grow(9)
    assert proc.post(fork.request(6)).status_code == 422
    # the honest log goes on; a branch diverging after the cosigned size 6 is
    # consistent with it, so whichever comes first is cosigned and the other is
    # then a fork at the same size: 409
    log.grow(10)
    branch = ToyLog(log.signer, tag="a").grow(6)
    branch.tag = "c"
    branch.grow(10)
    _cosigned(proc.post(log.request(6)), verifier, log, 10)
    _conflict(proc.post(branch.request(6)), 10)
    _forked(proc.post(branch.request(10)))
    # the refused, log-signed requests are kept as evidence
    with sqlite3.connect(proc.state / "witness.db") as db:
        statuses = sorted(r[0] for r in db.execute("SELECT status FROM refused"))
    assert statuses == [409, 409, 422], statuses


def test_restart_keeps_state(witness) -> None:
    proc, verifier, log = witness
    log.grow(7)
    _cosigned(proc.post(log.request(0)), verifier, log, 7)
    proc.stop()
    proc.start()
    log.grow(9)
    _conflict(proc.post(log.request(0)), 7)
    _cosigned(proc.post(log.request(7)), verifier, log, 9)


def test_add_log_twice_is_harmless(witness) -> None:
    proc, _verifier, log = witness
    res = run_jejak("witness", "add-log", "--state", str(proc.state), log.signer.verifier_key_text())
    assert res.returncode == 0 and '"added": false' in res.stdout


def test_racing_requests_cosign_once(witness) -> None:
    """Checking the old size and storing the new head are one compare-and-swap:
    of many identical requests racing from the same old size, one is cosigned and
    every other one is told the new size (tlog-witness's rollback race)."""
    from concurrent.futures import ThreadPoolExecutor

    proc, verifier, log = witness
    log.grow(5)
    _cosigned(proc.post(log.request(0)), verifier, log, 5)
    log.grow(9)
    body = log.request(5)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: proc.post(body), range(12)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 11, codes
    assert all(a.text == "9\n" for a in answers if a.status_code == 409)
