"""The same C2SP tlog-tiles served by `jejak serve` under /public/v1/tlog/:
byte for byte what `jejak tiles DIR` writes, caching headers by mutability,
mirrored over real HTTP by an independent reader and by `jejak monitor`."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from tests.e2e.conftest import Deployment
from tests.tlog_reader import read_log, tile_path

IMMUTABLE = "public, max-age=31536000, immutable"


def test_served_tiles_equal_the_static_ones_and_a_monitor_follows_them(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    r = deployment.cli("tiles", str(out))
    assert r.returncode == 0, r.stderr
    base = deployment.base_url + "/public/v1/tlog"
    with httpx.Client(timeout=60) as http:
        cp = http.get(f"{base}/checkpoint")
        assert cp.status_code == 200 and cp.content == (out / "checkpoint").read_bytes()
        assert cp.headers["content-type"] == "text/plain; charset=utf-8"
        assert "immutable" not in cp.headers["cache-control"] and "max-age=5" in cp.headers["cache-control"]
        files = [p for p in sorted((out / "tile").rglob("*")) if p.is_file()]
        assert any(".p" not in p.relative_to(out).as_posix() for p in files)  # full tiles are among them
        for path in files:
            rel = path.relative_to(out).as_posix()
            got = http.get(f"{base}/{rel}")
            assert got.status_code == 200 and got.content == path.read_bytes(), rel
            assert got.headers["content-type"] == "application/octet-stream"
            assert (got.headers["cache-control"] == IMMUTABLE) == (".p/" not in rel), rel

        origin, size, root, entries, _ = read_log(lambda rel: http.get(f"{base}/{rel}").content)
        published = b"\n".join(entries)  # the leaves hold NIK and KK only as keyed tokens (SPEC §1)
        assert b"tk1_" in published
        assert not [n for n in deployment.niks | deployment.kks if n.encode() in published]
        assert size >= deployment.checkpoint_size and size % 256 < 255
        # beyond the checkpoint's tree, or not a tile path: 404
        for rel in (tile_path(0, size // 256 + 1, 256), tile_path("entries", size // 256, size % 256 + 1),
                    "tile/0/x000/001", "tile/0/001.p/256", "tile/99/000", "tile/entries/abc"):
            assert http.get(f"{base}/{rel}").status_code == 404, rel
        assert http.post(f"{base}/checkpoint").status_code == 405

    vkey = deployment.cli("key").stdout.strip()
    state = tmp_path / "monitor"
    r = deployment.cli("monitor", "--tiles", base, "--log-key", vkey, "--state", str(state), check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (state / "checkpoint").read_bytes() == (out / "checkpoint").read_bytes()


def test_a_receipt_downloads_as_a_tlog_proof_that_verifies_offline(deployment: Deployment, public, inspector,
                                                                    tmp_path: Path) -> None:
    order = deployment.facts_of_type("disbursement.ordered")[3]
    code = inspector.get(f"/v1/receipts/{order['id']}").json()["code"]
    receipt = public.get(f"/public/v1/receipts/{order['id']}", params={"code": code}).json()
    got = public.get(f"/public/v1/receipts/{order['id']}", params={"code": code, "format": "tlog-proof"})
    assert got.status_code == 200 and got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.headers["content-disposition"].startswith("attachment; filename=") and ".tlog-proof" in \
        got.headers["content-disposition"]
    assert got.text.startswith(f"c2sp.org/tlog-proof@v1\nindex {receipt['index']}\n")
    assert got.text.endswith("\n\n" + public.get("/public/v1/tlog/checkpoint").text)
    assert order["nik"] not in got.text and order["kk"] not in got.text
    (tmp_path / "r.tlog-proof").write_bytes(got.content)
    (tmp_path / "leaf").write_bytes(base64.b64decode(receipt["leaf"]))
    vkey = deployment.cli("key").stdout.strip()
    r = deployment.cli("audit", "verify-proof", str(tmp_path / "r.tlog-proof"), "--log-key", vkey,
                       "--leaf", str(tmp_path / "leaf"), check=False)
    assert r.returncode == 0, r.stdout
    wrong = public.get(f"/public/v1/receipts/{order['id']}", params={"code": "AAAAAAAAAA", "format": "tlog-proof"})
    assert wrong.status_code == 404
