"""bench/openloop.py: a fixed-rate client that charges waiting to the request that waited."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/slow"):
            time.sleep(0.3)
        status = 404 if self.path.startswith("/missing") else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.seen.append((self.path, self.headers.get("Authorization")))  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run(server, tmp_path: Path, paths: list[str], *args: str) -> dict:
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "openloop.py"), "--base", f"http://127.0.0.1:{server.server_port}",
         "--paths", str(listing), "--warmup", "0", *args],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_scheduled_request_is_sent_and_answered(server, tmp_path) -> None:
    r = run(server, tmp_path, ["/a?x=1", "/b"], "--rate", "40", "--seconds", "1", "--auth", "Bearer t0k")
    assert (r["requests"], r["ok"], r["errors"]) == (40, 40, 0)
    assert [p for p, _ in server.seen] == ["/a?x=1", "/b"] * 20  # paths cycled in order
    assert {a for _, a in server.seen} == {"Bearer t0k"}
    assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]


def test_non_2xx_answers_are_errors(server, tmp_path) -> None:
    r = run(server, tmp_path, ["/missing", "/ok"], "--rate", "20", "--seconds", "1")
    assert r["ok"] == 10 and r["errors"] == 10 and r["error_kinds"] == {"HTTP 404": 10}


def test_requests_stuck_behind_a_slow_one_are_charged_from_their_schedule(server, tmp_path) -> None:
    # One connection: the requests scheduled while /slow is answered wait for it.
    # A closed loop would not even send them; here each one's latency counts
    # from its scheduled time, so the median is far above the service time.
    r = run(server, tmp_path, ["/slow"] + ["/fast"] * 19, "--rate", "50", "--seconds", "0.4",
            "--connections", "1")
    assert r["ok"] == 20 and r["errors"] == 0
    assert r["max_ms"] >= 300  # the slow answer itself
    assert r["p50_ms"] >= 50  # ...and half the others waited behind it (request i at 20i ms: >= 300 - 20i ms)
    assert r["service_p50_ms"] < r["p50_ms"]
