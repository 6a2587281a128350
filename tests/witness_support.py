"""Helpers for witness tests: an in-memory log that signs checkpoints and gives
consistency proofs, and a real `jejak witness serve` subprocess."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint
from jejak.audit.merkle import MemoryNodeStore, consistency_proof, leaf_hash, root_at
from jejak.audit.note import Signer

JEJAK = [sys.executable, "-m", "jejak.cli"]


@dataclass
class ToyLog:
    """A log held in memory (leaves are b'<tag> <n>', so two tags make two forks)."""

    signer: Signer
    tag: str = "a"
    nodes: MemoryNodeStore = field(default_factory=MemoryNodeStore)
    size: int = 0

    @classmethod
    def named(cls, origin: str, seed: str = "toy log", tag: str = "a") -> "ToyLog":
        return cls(Signer(origin, hashlib.sha256(seed.encode()).digest()), tag)

    def grow(self, to: int) -> "ToyLog":
        self.size = self.nodes.append(self.size, [leaf_hash(f"{self.tag} {i}".encode()) for i in range(self.size, to)])
        return self

    def root(self, size: int | None = None) -> bytes:
        return root_at(self.size if size is None else size, self.nodes)

    def note(self, size: int | None = None) -> str:
        size = self.size if size is None else size
        return sign_checkpoint(Checkpoint(self.signer.name, size, self.root(size)), self.signer)

    def proof(self, old: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        return [] if old in (0, size) else consistency_proof(old, size, self.nodes)

    def request(self, old: int, size: int | None = None, proof: list[bytes] | None = None) -> bytes:
        proof = self.proof(old, size) if proof is None else proof
        lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
        return f"old {old}\n{lines}\n{self.note(size)}".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_jejak(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*JEJAK, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


class WitnessProcess:
    """`jejak witness serve --state DIR` on a free port, until stopped."""

    def __init__(self, state: Path, port: int | None = None) -> None:
        self.state = state
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WitnessProcess":
        self.proc = subprocess.Popen(
            [*JEJAK, "witness", "serve", "--state", str(self.state), "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"witness exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("witness did not start within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(self.url + "/add-checkpoint", content=body, timeout=10)


def init_witness(state: Path, name: str) -> str:
    """Create a witness with the real CLI; return its verifier key (the last line printed)."""
    res = run_jejak("witness", "init", "--name", name, "--state", str(state))
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]
