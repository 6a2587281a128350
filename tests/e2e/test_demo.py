"""`bash scripts/demo.sh`, the first command of the README, run as a newcomer
would (issue 17, item 8): it ends with findings an inspector would act on,
each with its facts, their log indexes and proofs checked offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_ends_with_evidenced_findings(tmp_path: Path) -> None:
    copy = tmp_path / "jejak"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "demo", "*.db", "*.db.keys", "*-keys",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    (copy / ".venv").symlink_to(Path(sys.prefix))  # the test's own environment, jejak installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
    r = subprocess.run(["bash", "scripts/demo.sh"], cwd=copy, env={**env, "FAMILIES": "150"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "planted anomalies all found and nothing else: True" in out
    tail = out[out.index("== findings an inspector would act on"):]
    for rule in ("asn_recipient", "companion_concentration", "deceased_recipient"):
        assert f"({rule})" in tail, tail
    evidence = re.findall(r"log index (\d+): (\S+) .*\n\s+inclusion proof .* checked offline: (\w+)", tail)
    assert len(evidence) >= 6 and all(verdict == "valid" for _i, _id, verdict in evidence), tail
    assert not re.search(r"\b\d{16}\b", tail), "NIKs and KKs are shown masked"
