"""Several processes opening a new store at once agree on one set of secrets:
nobody ever reads a half-written key file."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path


def _load(keys_dir: str, queue) -> None:
    from jejak.secrets import load_master_secrets
    from jejak.settings import Settings
    from jejak.transparency import load_keyring

    settings = Settings(store=str(Path(keys_dir) / "x.db"), keys_dir=Path(keys_dir))
    secrets = load_master_secrets(settings)
    signer = load_keyring(settings).current_signer()
    queue.put((secrets.pseudonym_key, secrets.kek, signer.verifier_key_text()))


def test_concurrent_first_use_creates_one_set_of_secrets(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    for round_ in range(5):
        keys_dir = tmp_path / f"keys-{round_}"
        queue = ctx.Queue()
        procs = [ctx.Process(target=_load, args=(str(keys_dir), queue)) for _ in range(4)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        assert len(set(results)) == 1
        assert len(results[0][0]) == 32 and len(results[0][1]) == 32
        assert not list(keys_dir.glob(".*.tmp"))
