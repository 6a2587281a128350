"""`jejak verify`'s checkpoint checks, each branch on both stores (issue 22, point 1).

Every recorded checkpoint's root must equal the root recomputed over the log,
successive checkpoints must be consistent, and the log's own bookkeeping (head
chain, row count, tree nodes) must agree with the entries. The forged
checkpoints here are signed with the store's *own* key, so only those checks
can tell them from honest ones.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint
from jejak.audit.keys import KeyRing
from jejak.ledger import Ledger
from jejak.settings import Settings
from jejak.store.recorders import STORED_FROM_LEVEL
from tests.conftest import fresh_pg_database
from tests.integration.test_tamper import TAMPERED, Env, Pristine, _fresh_facts, env, pristine  # noqa: F401 (fixtures)


def _origin(e: Env) -> str:
    return e.checkpoint.read_text().split("\n")[0]


def _add_checkpoint(e: Env, seq: int, size: int, root: bytes) -> None:
    """Record a checkpoint signed by the store's own current key, as `jejak checkpoint` would."""
    signer = KeyRing.load(e.keys_dir).current_signer()
    note = sign_checkpoint(Checkpoint(_origin(e), size, root), signer)
    key_id = signer.verifier_key_text().split("+")[1]
    e.sql("INSERT INTO jejak_checkpoints (seq, size, root, note, key_id, created) VALUES (?, ?, ?, ?, ?, ?)",
          (seq, size, root, note, key_id, "2024-01-01T00:00:00+00:00"))


def _root(e: Env, size: int) -> bytes:
    res = e.jejak("prove", "0", "--size", str(size))
    assert res.returncode == 0, res.stderr
    return bytes.fromhex(json.loads(res.stdout)["root"])


def test_a_wrong_root_signed_with_the_stores_own_key_is_caught(env: Env) -> None:
    wrong = bytearray(_root(env, env.size))
    wrong[0] ^= 1
    _add_checkpoint(env, 1, env.size, bytes(wrong))
    out = env.assert_tampered(env.size - 1)
    assert f"checkpoint #1 root over the first {env.size} entries: expected {bytes(wrong).hex()}" in out["error"], out


def test_a_checkpoint_smaller_than_the_one_before_is_caught(env: Env) -> None:
    """Its root is the true root over its entries, but checkpoints never shrink."""
    _add_checkpoint(env, 1, env.size - 3, _root(env, env.size - 3))
    out = env.assert_tampered(None)
    assert f"checkpoint #1 size (non-decreasing): expected '>= {env.size}', got {env.size - 3}" in out["error"], out


def test_an_honest_checkpoint_added_by_hand_verifies(env: Env) -> None:
    """The control for the forgeries here: the same insertion with the true root is intact."""
    ing = env.jejak("ingest", "-", stdin=_fresh_facts(env, 96))
    assert ing.returncode == 0, ing.stderr[-2000:]
    size = env.query("SELECT size FROM jejak_head")[0]["size"]
    _add_checkpoint(env, 1, size, _root(env, size))
    assert env.assert_intact()["checkpoints"] == 2


def test_a_checkpoint_copied_from_another_store_is_caught(env: Env, pristine: Pristine, tmp_path: Path) -> None:
    """A second store with one amount changed, holding the first store's signed
    checkpoint (same keys, so the signature itself is valid), is not intact."""
    lines = env.facts.read_text().splitlines()
    changed = next(i for i, line in enumerate(lines) if '"amount"' in line and i >= TAMPERED)
    fact = json.loads(lines[changed])
    fact["amount"] += 1
    lines[changed] = json.dumps(fact)
    facts = tmp_path / "other.jsonl"
    facts.write_text("\n".join(lines) + "\n")

    def check(url: str) -> None:
        with Ledger.open(Settings(store=url, keys_dir=env.keys_dir)) as led:
            with facts.open("rb") as f:
                assert led.ingest_lines(f).rejected == 0
        row = env.query("SELECT seq, size, root, note, key_id, created FROM jejak_checkpoints WHERE seq = 0")[0]
        other = Env(env.tmp, url, env.keys_dir, facts, env.size, env.checkpoint, env.keyfile)
        other.sql("INSERT INTO jejak_checkpoints (seq, size, root, note, key_id, created) VALUES (?, ?, ?, ?, ?, ?)",
                  (row["seq"], row["size"], bytes(row["root"]), row["note"], row["key_id"], row["created"]))
        assert other.query("SELECT size FROM jejak_head")[0]["size"] == env.size
        out = other.assert_tampered(env.size - 1)
        assert f"checkpoint #0 root over the first {env.size} entries" in out["error"], out

    if pristine.kind == "sqlite":
        check(str(tmp_path / "other.db"))
    else:
        with fresh_pg_database() as url:
            check(url)


def _fork_found(error: str, seq: int) -> bool:
    """Either check names the fork: the root of checkpoint #seq, or the consistency of #1 with #0."""
    return f"checkpoint #{seq} root over the first" in error or "consistency proof" in error or "does not extend" in error


def test_a_fork_between_two_checkpoints_is_caught(env: Env) -> None:
    """Checkpoint #1 extends a different history than #0 (its root is over other
    entries): neither the root recomputation nor the consistency check lets it pass."""
    ing = env.jejak("ingest", "-", stdin=_fresh_facts(env, 95))
    assert ing.returncode == 0, ing.stderr[-2000:]
    size = env.query("SELECT size FROM jejak_head")[0]["size"]
    forked = bytearray(_root(env, size))
    forked[-1] ^= 0x80
    _add_checkpoint(env, 1, size, bytes(forked))
    out = env.assert_tampered(None)
    assert _fork_found(out["error"], 1), out


def test_a_fork_of_the_first_checkpoint_is_caught(env: Env) -> None:
    """#0 is rewritten to sign another root (as a log that forked before its
    first checkpoint would); #1, issued honestly later, is consistent with the log
    but not with #0."""
    ing = env.jejak("ingest", "-", stdin=_fresh_facts(env, 94))
    assert ing.returncode == 0, ing.stderr[-2000:]
    assert env.jejak("checkpoint").returncode == 0
    wrong = bytearray(_root(env, env.size))
    wrong[5] ^= 4
    env.sql("DELETE FROM jejak_checkpoints WHERE seq = 0")
    _add_checkpoint(env, 0, env.size, bytes(wrong))
    out = env.assert_tampered(None)
    assert _fork_found(out["error"], 0), out


def test_a_checkpoint_larger_than_the_log_is_caught(env: Env) -> None:
    _add_checkpoint(env, 1, env.size + 5, bytes(32))
    out = env.assert_tampered(env.size)
    assert f"checkpoint #1 size (at most the log size): expected {env.size}, got {env.size + 5}" in out["error"], out


def test_a_changed_head_chain_is_caught(env: Env) -> None:
    env.sql("UPDATE jejak_head SET chain = ?", (bytes(32),))
    out = env.assert_tampered(env.size - 1)
    assert "log head chain hash: expected" in out["error"], out


def test_a_log_row_beyond_the_head_is_caught(env: Env) -> None:
    """A log row (without an event) past the head: the row count and the head disagree."""
    row = env.query("SELECT fact_id, originator_id, chain, leaf_hash FROM jejak_log WHERE idx = 0")[0]
    env.sql("INSERT INTO jejak_log (idx, fact_id, originator_id, chain, leaf_hash) VALUES (?, ?, ?, ?, ?)",
            (env.size + 2, "x:extra", _other_oid(env, row["originator_id"]), bytes(row["chain"]), bytes(row["leaf_hash"])))
    out = env.assert_tampered(env.size)
    assert f"log has {env.size + 1} rows but head says size {env.size}" in out["error"], out


def _other_oid(e: Env, oid: Any) -> Any:
    fresh = uuid.uuid4()
    return str(fresh) if isinstance(oid, str) else fresh


def test_a_tree_node_beyond_the_log_is_caught(env: Env) -> None:
    level = STORED_FROM_LEVEL  # the lowest level kept in jejak_nodes
    beyond = (env.size >> level) + 1
    env.sql("INSERT INTO jejak_nodes (level, idx, hash) VALUES (?, ?, ?)", (level, beyond, bytes(32)))
    out = env.assert_tampered(beyond << level)
    assert f"Merkle node (level {level}, index {beyond}) beyond the log" in out["error"], out


def test_verify_reports_progress_over_every_entry(env: Env) -> None:
    """The progress bar of `jejak verify` ends at the log size, whatever the size."""
    from jejak.transparency import Transparency

    steps: list[int] = []
    store = env.store()
    try:
        out = Transparency(store, Settings(store=env.store_url, keys_dir=env.keys_dir)).verify(progress=steps.append)
    finally:
        store.close()
    assert out == {"intact": True, "size": env.size, "checkpoints": 1}
    assert sum(steps) == env.size and all(step > 0 for step in steps[:-1])


def test_verify_reports_progress_in_steps_of_ten_thousand(tmp_path: Path) -> None:
    """Past 10,000 entries the progress comes in steps of 10,000 and still adds up to the size."""
    from jejak.generate import write_files
    from jejak.transparency import Transparency

    facts = tmp_path / "facts.jsonl"
    write_files(families=440, seed=5, out_path=facts)
    settings = Settings(store=str(tmp_path / "big.db"), keys_dir=tmp_path / "keys")
    with Ledger.open(settings) as led:
        with facts.open("rb") as f:
            assert led.ingest_lines(f).rejected == 0
        size = led.store.log_size()
        assert size > 10000
        steps: list[int] = []
        assert Transparency(led.store, settings).verify(progress=steps.append)["intact"] is True
        assert Transparency(led.store, settings).verify()["intact"] is True  # and without a progress callback
    assert steps == [10000] * (size // 10000) + [size % 10000]


def test_a_checkpoint_of_the_same_size_under_a_rotated_key_verifies(env: Env) -> None:
    """After `jejak key --rotate` the same head is signed again by the new key:
    two checkpoints of one size are consistent, not a shrinking log."""
    rotated = env.jejak("key", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    again = env.jejak("checkpoint")
    assert again.returncode == 0, again.stderr
    assert int(again.stdout.split("\n")[1]) == env.size and again.stdout != env.checkpoint.read_text()
    assert env.assert_intact()["checkpoints"] == 2
