"""The public page in a real headless Chromium (system browser, no downloads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jejak.projections.engine import RULES
from tests.e2e.conftest import REPO, Deployment

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REQUIRE = os.environ.get("JEJAK_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="module")
def browser():
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "playwright is not installed (pip install playwright)"
    if problem:
        if REQUIRE:
            pytest.fail(problem + " (JEJAK_REQUIRE_SERVICES=1)")
        pytest.skip(problem)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_public_page(browser, deployment: Deployment, inspector) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(deployment.base_url) else outside.append(r.url))
    try:
        page.goto(deployment.base_url + "/", wait_until="networkidle")
        page.wait_for_selector("body[data-ready='1']", timeout=15000)
        assert page.locator("html").get_attribute("lang") == "id"
        assert "Transparansi" in page.locator("h1").inner_text()

        # totals, chart, anomalies, checkpoint
        assert page.locator("#totals .card").count() == 2
        bars = page.locator("#chart rect.bar")
        assert bars.count() > 0
        heights = page.eval_on_selector_all("#chart rect.bar", "els => els.map(e => e.getBBox().height)")
        assert max(heights) > 10
        assert page.locator("#anomalies tbody tr").count() == len(RULES)  # the planted data fires every rule
        labels = page.locator("#anomalies tbody td:first-child").all_inner_texts()
        assert labels and not any(label.startswith("r_") for label in labels), labels  # every rule has its name
        cp = inspector.get("/public/v1/checkpoint").json()
        assert page.locator("#cp-root").inner_text() == cp["root_hex"]
        # chart for one kecamatan: the bars become that kecamatan's published sums
        assert chart_values(page) == published_sums(inspector, "kota", None)
        # the browser checked the checkpoint's Ed25519 signature itself (WebCrypto); no witness policy here
        assert page.locator("#cp-verify").get_attribute("data-status") == "valid"
        assert "tanda tangan log sah" in page.locator("#cp-verify").inner_text()
        region = page.eval_on_selector("#region", "s => s.options.length > 1 ? s.options[1].value : ''")
        assert region, "the page offers a kecamatan to select"
        want = published_sums(inspector, "kecamatan", region)
        assert want and want != chart_values(page), "selecting the kecamatan must change the chart"
        page.select_option("#region", region)
        page.wait_for_function(CHART_IS, arg=json.dumps(sorted(want.items()), separators=(",", ":")), timeout=10000)
        assert chart_values(page) == want

        # a real receipt turns green
        order = next(f for f in deployment.facts if f["type"] == "disbursement.ordered")
        code = inspector.get(f"/v1/receipts/{order['id']}").json()["code"]
        result = page.locator("#receipt-result")
        page.fill("#order-id", order["id"])
        page.fill("#code", code)
        page.click("#receipt-form button[type=submit]")
        page.wait_for_selector("#receipt-result[data-status='valid']", timeout=10000)
        assert "ok" in result.get_attribute("class")
        green = page.eval_on_selector("#receipt-result", "e => getComputedStyle(e).borderTopColor")
        assert green == "rgb(19, 115, 51)"
        assert order["kk"] not in page.content() and order["nik"] not in page.content()

        # English toggle keeps the result, translated
        page.click("#lang")
        assert page.locator("html").get_attribute("lang") == "en"
        assert "Verified" in result.inner_text()
        page.screenshot(path=str(artifacts() / "web-page.png"), full_page=True)
        page.click("#lang")

        # a forged code turns red
        page.fill("#code", "AAAAAAAAAA")
        page.click("#receipt-form button[type=submit]")
        page.wait_for_selector("#receipt-result[data-status='notfound']", timeout=10000)
        assert "bad" in result.get_attribute("class")

        # a forged proof (served by a man in the middle) turns red: the browser checks it itself
        def forge(route):
            response = route.fetch()
            body = response.json()
            first = body["proof"]["proof"][0]
            body["proof"]["proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
            route.fulfill(response=response, body=json.dumps(body), headers={**response.headers, "content-type": "application/json"})

        page.route("**/public/v1/receipts/**", forge)
        page.fill("#code", code)
        page.click("#receipt-form button[type=submit]")
        page.wait_for_selector("#receipt-result[data-status='invalid']", timeout=10000)
        red = page.eval_on_selector("#receipt-result", "e => getComputedStyle(e).borderTopColor")
        assert red == "rgb(179, 38, 30)"
        page.unroute("**/public/v1/receipts/**")
        assert page.locator("#receipt-download").count() == 0  # an invalid result offers no download

        # a checkpoint whose signature does not verify turns the same receipt red
        def forge_signature(route):
            response = route.fetch()
            body = response.json()
            text, sig = body["note"].rsplit(" ", 1)
            body["note"] = text + " " + ("A" if sig[8] != "A" else "B").join([sig[:8], sig[9:]])
            route.fulfill(response=response, body=json.dumps(body), headers={**response.headers, "content-type": "application/json"})

        page.route("**/public/v1/checkpoint", forge_signature)
        page.click("#receipt-form button[type=submit]")
        page.wait_for_selector("#receipt-result[data-status='invalid']", timeout=10000)
        assert page.locator("#cp-verify").get_attribute("data-status") == "invalid"
        page.unroute("**/public/v1/checkpoint")
        page.click("#receipt-form button[type=submit]")
        page.wait_for_selector("#receipt-result[data-status='valid']", timeout=10000)
        href = page.locator("#receipt-download").get_attribute("href")
        assert "format=tlog-proof" in href
        assert inspector.get(href).text.startswith("c2sp.org/tlog-proof@v1\n")

        assert not errors, errors
        assert not outside, f"the page fetched from elsewhere: {outside}"
    finally:
        context.close()


CHART_VALUES = """() => [...document.querySelectorAll('#chart rect.bar')]
    .map(r => [r.dataset.period + '|' + r.dataset.kind, Number(r.dataset.value)])"""
CHART_IS = f"want => JSON.stringify(({CHART_VALUES})().sort()) === want"


def chart_values(page) -> dict[str, int]:
    return dict(page.evaluate(CHART_VALUES))


def published_sums(client, level: str, region: str | None) -> dict[str, int]:
    """What the chart must show: per period and amount kind, the sum over the published cells."""
    params = {"level": level, "limit": 1000, **({"region": region} if region else {})}
    sums: dict[str, int] = {}
    for cell in client.get("/public/v1/aggregates", params=params).json()["items"]:
        if not cell["suppressed"]:
            for kind in ("ordered", "credited", "collected", "returned"):
                key = f"{cell['period']}|{kind}"
                sums[key] = sums.get(key, 0) + cell["amounts"][kind]
    return sums


def artifacts() -> Path:
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
