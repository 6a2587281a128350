"""`jejak serve` signs checkpoints by itself (issue 17, item 4): receipts in a
running system become covered without anyone running `jejak checkpoint`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import free_port
from tests.e2e.test_cli_core import cli, fact, lines

JEJAK = [sys.executable, "-m", "jejak.cli"]


def _wait_for_checkpoint(base: str, size: int, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 90  # a bound on a hang, not a timing assertion
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else ""
        try:
            r = httpx.get(f"{base}/public/v1/checkpoint", timeout=5)
            if r.status_code == 200 and r.json()["size"] >= size:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of size {size} was signed")


def test_serve_signs_a_checkpoint_after_a_size_threshold(store_url: str, tmp_path: Path) -> None:
    src = tmp_path / "f.jsonl"
    src.write_bytes(lines(*(fact(f"o-{i}") for i in range(4))))
    assert cli(tmp_path, "ingest", str(src), store=store_url).returncode == 0
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "JEJAK_STORE"}, "JEJAK_KEYS_DIR": str(tmp_path / "keys"),
           "JEJAK_CHECKPOINT_INTERVAL": "0", "JEJAK_CHECKPOINT_AFTER": "3"}
    server = subprocess.Popen([*JEJAK, "--store", store_url, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        first = _wait_for_checkpoint(base, 4, server)
        assert first["size"] == 4
        more = tmp_path / "more.jsonl"
        more.write_bytes(lines(*(fact(f"o-more-{i}") for i in range(3))))
        assert cli(tmp_path, "ingest", str(more), store=store_url).returncode == 0
        assert _wait_for_checkpoint(base, 7, server)["size"] == 7
    finally:
        server.terminate()
        server.wait(timeout=30)
    v = cli(tmp_path, "verify", store=store_url)
    assert v.returncode == 0 and json.loads(v.stdout)["checkpoints"] == 2, v.stdout
