"""The witness's add-checkpoint logic on a real state directory (SQLite), without
HTTP: the compare-and-swap that closes tlog-witness's rollback race, and
request parsing limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from jejak.witness.protocol import MAX_PROOF_LINES, add_checkpoint
from jejak.witness.state import LogHead, WitnessState, WitnessStateError, init_state
from tests.witness_support import ToyLog

ORIGIN = "example.org/toy-log"


@pytest.fixture
def state(tmp_path: Path):
    init_state(tmp_path / "w", "witness.test/unit")
    opened = WitnessState(tmp_path / "w")
    try:
        yield opened
    finally:
        opened.close()


def test_a_head_moved_after_the_check_is_not_rolled_back(state: WitnessState, monkeypatch) -> None:
    """Request A (old 5 → 7) is checked; request B (old 5 → 9) commits meanwhile;
    A must then get 409 with size 9, and the stored head must stay at 9."""
    log = ToyLog.named(ORIGIN).grow(5)
    state.add_log(log.signer.verifier)
    assert add_checkpoint(state, log.request(0)).status == 200
    request_a = log.grow(7).request(5)
    request_b = log.grow(9).request(5)
    checked_head = state.head

    def head_then_b_commits(origin: str) -> LogHead | None:
        seen = checked_head(origin)
        monkeypatch.setattr(state, "head", checked_head)
        assert add_checkpoint(state, request_b).status == 200
        return seen

    monkeypatch.setattr(state, "head", head_then_b_commits)
    answer = add_checkpoint(state, request_a)
    assert (answer.status, answer.body, answer.content_type) == (409, "9\n", "text/x.tlog.size")
    assert state.head(ORIGIN) == LogHead(9, log.root(9))


def test_advance_is_compare_and_swap(state: WitnessState) -> None:
    log = ToyLog.named(ORIGIN).grow(4)
    state.add_log(log.signer.verifier)
    start = state.head(ORIGIN)
    assert state.advance(ORIGIN, start, LogHead(4, log.root(4))) is None
    assert state.advance(ORIGIN, start, LogHead(2, log.root(2))) == LogHead(4, log.root(4))
    assert state.head(ORIGIN) == LogHead(4, log.root(4))


def test_too_many_proof_lines_is_a_bad_request(state: WitnessState) -> None:
    log = ToyLog.named(ORIGIN).grow(3)
    state.add_log(log.signer.verifier)
    assert add_checkpoint(state, log.request(0, proof=[bytes(32)] * (MAX_PROOF_LINES + 1))).status == 400


def test_empty_log_checkpoint_and_its_root(state: WitnessState) -> None:
    log = ToyLog.named(ORIGIN)
    state.add_log(log.signer.verifier)
    assert add_checkpoint(state, log.request(0)).status == 200  # size 0, root of the empty tree


def test_state_dir_without_witness(tmp_path: Path) -> None:
    with pytest.raises(WitnessStateError, match="holds no witness"):
        WitnessState(tmp_path)
    with pytest.raises(WitnessStateError, match="invalid witness name"):
        init_state(tmp_path / "x", "has space")
    (tmp_path / "file").write_text("")
    with pytest.raises(WitnessStateError, match="cannot create the state directory"):
        init_state(tmp_path / "file", "witness.test/x")
