"""The public page as a newcomer sees it, at 1280 and 390 px wide, in real
Chromium (issue 17, item 7): region names in the filter, chart labels that
stay inside the screen, do not overlap and are drawn (read from a
screenshot), units in the page's language, and the checkpoint explained."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.e2e.conftest import Deployment
from tests.e2e.test_web_page import artifacts, browser  # noqa: F401 - the fixture

LABELS_JS = """sel => [...document.querySelectorAll(sel)].map(e => {
  const r = e.getBoundingClientRect(); return {text: e.textContent, x: r.x, y: r.y, w: r.width, h: r.height}; })"""


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def _ink(image: Image.Image, box: dict, origin: dict) -> int:
    """Dark pixels (text) inside a label's box, in a screenshot of the chart."""
    left, top = int(box["x"] - origin["x"]), int(box["y"] - origin["y"])
    crop = image.crop((max(left, 0), max(top, 0), int(left + box["w"]) + 1, int(top + box["h"]) + 1)).convert("L")
    return sum(crop.histogram()[:140])


@pytest.mark.parametrize("width", [1280, 390])
def test_page_reads_at_this_width(browser, deployment: Deployment, width: int) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(deployment.base_url + "/", wait_until="networkidle")
        page.wait_for_selector("body[data-ready='1']", timeout=15000)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "nothing sticks out sideways"

        options = page.eval_on_selector_all("#region option", "os => os.map(o => [o.value, o.textContent])")
        named = [(value, text) for value, text in options if value]
        assert named and all(re.fullmatch(rf"[^\d]+ \({value}\)", text) for value, text in named), named
        assert any("Binjai" in text for _, text in named)

        for language in ("id", "en"):
            chart = page.locator("#chart")
            chart.scroll_into_view_if_needed()
            origin = chart.bounding_box()
            assert origin is not None and origin["x"] >= 0 and origin["x"] + origin["width"] <= width + 0.5
            labels = page.evaluate(LABELS_JS, "#chart text.period")
            ticks = page.evaluate(LABELS_JS, "#chart text.tick")
            assert labels and ticks
            shot = Image.open(io.BytesIO(chart.screenshot()))
            shot.save(artifacts() / f"chart-{width}-{language}.png")
            for box in labels + ticks:
                assert 0 <= box["x"] and box["x"] + box["w"] <= width, (width, box)
                assert box["h"] >= 10, ("readable", box)
                assert _ink(shot, box, origin) > 5, ("drawn where it is said to be", box)
            for i, a in enumerate(labels):
                for b in labels[i + 1:]:
                    assert not _overlap(a, b), (width, a, b)
            tick_text = " ".join(box["text"] for box in ticks)
            if language == "id":
                assert "jt" in tick_text or " M" in tick_text, tick_text
                assert "sidik jari" in page.locator("#cp-what").inner_text()
                assert "Siapa pun dapat memeriksanya" in page.locator("#cp-how").inner_text()
                page.click("#lang")
                page.wait_for_function("document.documentElement.lang === 'en'")
                page.wait_for_timeout(200)
            else:
                assert "jt" not in tick_text and "juta" not in tick_text, tick_text
                assert "fingerprint" in page.locator("#cp-what").inner_text()
        page.screenshot(path=str(artifacts() / f"web-page-{width}.png"), full_page=True)
    finally:
        page.evaluate("localStorage.clear()")
        context.close()


def test_the_note_tells_a_cell_hidden_to_protect_another(browser, deployment: Deployment, public) -> None:  # noqa: F811
    cells = public.get("/public/v1/aggregates", params={"level": "kecamatan", "limit": 1000}).json()["items"]
    protecting = [c for c in cells if c["suppressed_because"] == "protects_another"]
    small = [c for c in cells if c["suppressed_because"] == "small"]
    assert small, "this data set has small cells"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(deployment.base_url + "/", wait_until="networkidle")
        page.wait_for_selector("body[data-ready='1']", timeout=15000)
        region = (protecting or small)[0]["region"]
        page.select_option("#region", region)
        page.wait_for_selector("#hidden-cells p", timeout=10000)
        notes = page.locator("#hidden-cells").inner_text()
        if protecting:
            assert "melindungi sel kecil lain" in notes, notes
        assert "kurang dari 5 keluarga" in notes or "melindungi" in notes, notes
    finally:
        context.close()
