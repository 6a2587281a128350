"""The public page checks witness cosignatures in the browser: a checkpoint
cosigned by real `jejak witness serve` processes, served with its policy,
checked by headless Chromium's WebCrypto Ed25519; a note stripped of its
cosignatures (a man in the middle) fails the quorum."""

from __future__ import annotations

import json
from pathlib import Path

from jejak.api.app import create_app
from jejak.settings import Settings
from tests.e2e.conftest import ServerThread, free_port
from tests.e2e.test_web_page import browser  # noqa: F401 - the Chromium fixture
from tests.integration.test_witnessed_checkpoint import Deployment


def test_the_browser_checks_the_witness_quorum(browser, tmp_path: Path) -> None:  # noqa: F811
    d = Deployment(tmp_path, str(tmp_path / "jejak.db"))
    try:
        assert d.checkpoint().exit_code == 0
        note = d.recorded()[-1]
        settings = Settings(store=d.store_url, keys_dir=d.keys, witness_policy=d.policy)
        port = free_port()
        with ServerThread(create_app(settings), port):
            base = f"http://127.0.0.1:{port}"
            context = browser.new_context()
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            try:
                page.goto(base + "/", wait_until="networkidle")
                page.wait_for_selector("body[data-ready='1']", timeout=15000)
                verdict = page.locator("#cp-verify")
                assert verdict.get_attribute("data-status") == "valid", verdict.inner_text()
                cosigners = [line.split(" ")[1] for line in note.split("\n\n", 1)[1].splitlines()[1:]]
                names = {"witness.test/w1": "W1", "witness.test/w2": "W2", "witness.test/w3": "W3"}
                shown = verdict.inner_text()
                assert all(names[c] in shown for c in cosigners) and "kuorum saksi terpenuhi" in shown

                def strip(route):  # only the log's own signature is left
                    response = route.fetch()
                    body = response.json()
                    text, block = body["note"].split("\n\n", 1)
                    body["note"] = text + "\n\n" + block.splitlines(keepends=True)[0]
                    route.fulfill(response=response, body=json.dumps(body),
                                  headers={**response.headers, "content-type": "application/json"})

                page.route("**/public/v1/checkpoint", strip)
                page.reload(wait_until="networkidle")
                page.wait_for_selector("body[data-ready='1']", timeout=15000)
                assert verdict.get_attribute("data-status") == "invalid"
                assert "TIDAK terpenuhi" in verdict.inner_text() and "tanda tangan log sah" in verdict.inner_text()
                assert not errors, errors
            finally:
                context.close()
    finally:
        d.stop()
