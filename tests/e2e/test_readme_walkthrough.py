"""The README's walk-through ("An inspector's day") runs as written (issue 17, item 6).

The fenced block is taken from README.md as it stands and run by bash with
`set -euo pipefail` on a store holding generated facts with planted
irregularities; only the port is changed to a free one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jejak.generate import write_files
from tests.e2e.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def walkthrough_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## An inspector's day"):]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the walk-through has a ```bash block"
    return match.group(1)


def test_the_block_is_the_walkthrough_of_the_issue() -> None:
    block = walkthrough_block()
    for step in ("jejak token create", "jejak token list", "jejak anomalies", "/trail", "jejak prove",
                 "/v1/receipts/", "jejak audit verify-proof", "jejak audit verify-export"):
        assert step in block, step


def test_the_readme_walkthrough_runs(tmp_path: Path) -> None:
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs it)")
    facts = tmp_path / "facts.jsonl"
    write_files(families=120, seed=5, out_path=str(facts), plant=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # `. .venv/bin/activate` as in the repository
    ingest = subprocess.run([sys.executable, "-m", "jejak.cli", "ingest", str(facts)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    port = str(free_port())
    script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + walkthrough_block().replace("8000", port)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + "\n--- stderr\n" + r.stderr[-3000:]
    out = r.stdout
    assert '"rule": "asn_recipient"' in out or '"rule":"asn_recipient"' in out
    assert "pemeriksaan ASN 2024" in out, "the query shows in the access log"
    assert '"covered_by_checkpoint":true' in out
    results = [json.loads(line) for line in out.splitlines() if line.startswith('{"valid"') or line.startswith('{"intact"')]
    assert [next(iter(x)) for x in results] == ["valid", "intact"] and all(next(iter(x.values())) for x in results)
