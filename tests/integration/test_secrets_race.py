"""Several processes opening a new store at once agree on one set of secrets:
nobody ever reads a half-written key file, and a process that loses the
creation race uses the winner's key.

The race is forced, not hoped for: each process waits at a barrier just before
it writes a secret file, so every one of them has already found the file
missing and every one tries to create it. Exactly one wins each file; the
others go through the lost-race branch (`FileExistsError` → read the winner's).
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

PROCESSES = 4
FILES = ("pseudonym.key", "kek.key", "checkpoint-keys.json")


def _load(keys_dir: str, barrier, queue) -> None:
    import jejak.audit.keys
    import jejak.secrets
    from jejak.secrets import load_master_secrets
    from jejak.settings import Settings
    from jejak.transparency import load_keyring

    outcomes: dict[str, str] = {}

    def racing(write):
        def write_after_everyone_found_it_missing(path: Path, data: bytes) -> None:
            barrier.wait(timeout=60)
            try:
                write(path, data)
            except FileExistsError:
                outcomes[path.name] = "lost"
                raise
            outcomes[path.name] = "won"
        return write_after_everyone_found_it_missing

    jejak.secrets.write_secret_file = racing(jejak.secrets.write_secret_file)
    jejak.audit.keys.write_new_file = racing(jejak.audit.keys.write_new_file)
    settings = Settings(store=str(Path(keys_dir) / "x.db"), keys_dir=Path(keys_dir))
    secrets = load_master_secrets(settings)
    signer = load_keyring(settings).current_signer()
    queue.put(((secrets.pseudonym_key, secrets.kek, signer.verifier_key_text()), outcomes))


def test_concurrent_first_use_creates_one_set_of_secrets(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    for round_ in range(2):
        keys_dir = tmp_path / f"keys-{round_}"
        queue, barrier = ctx.Queue(), ctx.Barrier(PROCESSES)
        procs = [ctx.Process(target=_load, args=(str(keys_dir), barrier, queue)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * PROCESSES, "a process that lost a race must not fail"
        results = [queue.get(timeout=5) for _ in procs]
        keys = {r[0] for r in results}
        assert len(keys) == 1, "every process uses the same secrets"
        pseudonym_key, kek, verifier = keys.pop()
        assert len(pseudonym_key) == 32 and len(kek) == 32
        assert pseudonym_key == (keys_dir / "pseudonym.key").read_bytes() and kek == (keys_dir / "kek.key").read_bytes()
        for name in FILES:  # the race really happened, for every file
            assert sorted(r[1][name] for r in results) == ["lost"] * (PROCESSES - 1) + ["won"], name
        assert not list(keys_dir.glob(".*.tmp"))
