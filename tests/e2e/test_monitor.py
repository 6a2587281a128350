"""`jejak monitor` (SPEC §7) on tile directories written by `jejak tiles`:
consistent growth passes, a fork or a rollback is reported with both
checkpoints, tampered entry bundles and tiles are caught, and a source that
cannot be reached is exit 2. The state moves on only after a good round."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jejak.generate import write_files
from tests.e2e.test_cli_core import cli
from tests.e2e.test_tiles import forked_home, ingest_lines


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Tile directories of one log at 300 and 600 entries, and of a fork of it
    (same origin and key, another history) at 650; all share one keys directory."""
    tmp = tmp_path_factory.mktemp("monitor")
    facts = tmp / "facts.jsonl"
    write_files(families=30, seed=9, out_path=facts)
    store, fork = str(tmp / "log.db"), str(tmp / "fork.db")
    home = forked_home(tmp, store)
    dirs = {}
    for name, where, db, start, stop in (("at300", tmp, store, 0, 300), ("at600", tmp, store, 300, 600),
                                         ("fork", home, fork, 1, 651)):
        ingest_lines(where, db, facts, start, stop)
        assert cli(where, "checkpoint", store=db).returncode == 0
        out = tmp / name
        if name == "at600":
            shutil.copytree(dirs["at300"], out)  # grown in place, as a publisher would
        assert cli(where, "tiles", str(out), store=db).returncode == 0
        dirs[name] = out
    vkey = cli(tmp, "key", store=store).stdout.decode().strip()
    return {"tmp": tmp, "vkey": vkey, **dirs}


def monitor(logs: dict, tiles: Path | str, state: Path) -> tuple[int, dict, str]:
    r = cli(logs["tmp"], "monitor", "--tiles", str(tiles), "--log-key", logs["vkey"], "--state", str(state))
    return r.returncode, json.loads(r.stdout.decode().splitlines()[0]), r.stderr.decode()


def test_consistent_growth_then_a_fork_and_a_rollback(logs: dict, tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, out, _ = monitor(logs, logs["at300"], state)
    assert (code, out["consistent"], out["new_entries"], out["fetched"]["size"]) == (0, True, 300, 300)
    code, out, _ = monitor(logs, logs["at600"], state)
    assert (code, out["new_entries"], out["kept"]["size"], out["fetched"]["size"]) == (0, 300, 300, 600)
    kept = (state / "checkpoint").read_text()
    assert kept == (logs["at600"] / "checkpoint").read_text()

    code, out, err = monitor(logs, logs["fork"], state)
    assert code == 1 and out["problem"] == "fork", out
    fork_note = (logs["fork"] / "checkpoint").read_text()
    assert out["kept_checkpoint"] == kept and out["fetched_checkpoint"] == fork_note
    assert kept in err and fork_note in err  # both checkpoints printed verbatim
    assert (state / "checkpoint").read_text() == kept  # a bad round keeps the old state

    code, out, err = monitor(logs, logs["at300"], state)  # the log went back to 300 entries
    assert code == 1 and out["problem"] == "rollback" and (logs["at300"] / "checkpoint").read_text() in err

    same_size_fork = tmp_path / "state300"
    assert monitor(logs, logs["at300"], same_size_fork)[0] == 0
    assert monitor(logs, logs["fork"], same_size_fork)[1]["problem"] == "fork"


def tampered(logs: dict, tmp_path: Path, rel: str, offset: int) -> Path:
    copy = tmp_path / "tampered"
    shutil.copytree(logs["at600"], copy)
    data = bytearray((copy / rel).read_bytes())
    data[offset] ^= 0x01
    (copy / rel).write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize("rel, offset", [
    ("tile/entries/001", 40),  # a byte inside an entry
    ("tile/entries/002.p/88", 1),  # an entry's length prefix
    ("tile/0/000", 32 * 7 + 3),  # a leaf hash
    ("tile/0/002.p/88", 32 * 87),  # the last leaf hash of the partial tile
    ("tile/1/000.p/2", 3),  # a level-1 hash
    ("checkpoint", 25),  # the signed size/root
])
def test_tampered_tiles_and_bundles_are_caught(logs: dict, tmp_path: Path, rel: str, offset: int) -> None:
    bad = tampered(logs, tmp_path, rel, offset)
    code, out, err = monitor(logs, bad, tmp_path / "fresh")  # from nothing: every entry checked
    assert code == 1 and out["problem"] == "invalid", (rel, out)
    assert not (tmp_path / "fresh" / "checkpoint").exists()
    state = tmp_path / "from300"
    assert monitor(logs, logs["at300"], state)[0] == 0
    code, out, err = monitor(logs, bad, state)  # catching up from 300: the new entries are checked
    if rel in ("tile/0/000",):
        assert code == 0  # before the kept checkpoint, and not on the consistency path: not fetched again
    else:
        assert code == 1 and out["problem"] in ("invalid", "fork"), (rel, out)


def test_unreachable_sources_are_exit_2(logs: dict, tmp_path: Path) -> None:
    code, out, err = monitor(logs, "http://127.0.0.1:9/log", tmp_path / "s")
    assert code == 2 and out["problem"] == "unreachable" and "could not fetch" in err
    code, out, _ = monitor(logs, tmp_path / "nowhere", tmp_path / "s")
    assert code == 2
    partial = tmp_path / "partial"
    shutil.copytree(logs["at600"], partial)
    (partial / "tile/entries/001").unlink()
    code, out, _ = monitor(logs, partial, tmp_path / "s")
    assert code == 2 and "tile/entries/001" in out["error"]


def test_every_keeps_watching_until_a_problem(logs: dict, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert monitor(logs, logs["at600"], state)[0] == 0
    r = cli(logs["tmp"], "monitor", "--tiles", str(logs["fork"]), "--log-key", logs["vkey"], "--state", str(state),
            "--every", "0.2")
    assert r.returncode == 1  # the loop ends at the first round that finds a fork
    assert json.loads(r.stdout.decode().splitlines()[0])["problem"] == "fork"
