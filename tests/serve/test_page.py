"""The search page in a real headless Chromium (Debian's, driven by Playwright): type, see the hit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import live_server

from ragkit.serve import ServeConfig, create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background connections, no sandbox as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed (Debian: apt-get install chromium; CI has it)",
)


def test_typing_a_question_shows_the_expected_top_hit(retriever, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    # RAGKIT_PAGE_SCREENSHOT=benchmarks/results/search_page.png keeps the picture the README shows.
    screenshot = Path(os.environ.get("RAGKIT_PAGE_SCREENSHOT", tmp_path / "page.png"))
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    with live_server(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(url)
        sync_api.expect(page.locator("#about")).to_contain_text("chunks in")
        page.select_option("#mode", "bm25")  # the tiny test encoder's dense side is random
        page.fill("#q", "storming of the Bastille")
        page.press("#q", "Enter")
        first = page.locator("li.hit").first
        sync_api.expect(first.locator(".source")).to_have_text("french-revolution.md")
        sync_api.expect(page.locator("#status")).to_contain_text("bm25")
        marks = [m.lower() for m in first.locator("mark").all_inner_texts()]
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert "bastille" in marks  # the query's words are highlighted in the snippet
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_search_shows_its_message(retriever):
    sync_api = pytest.importorskip("playwright.sync_api")
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny", api_key="s3cret"))
    with live_server(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(url)
        sync_api.expect(page.locator("#key")).to_be_visible()  # the server requires a key
        page.fill("#q", "waggle dance")
        page.press("#q", "Enter")
        sync_api.expect(page.locator("#status")).to_have_text(
            "missing or wrong API key: send 'Authorization: Bearer KEY'"
        )
        page.fill("#key", "s3cret")
        page.press("#q", "Enter")
        sync_api.expect(page.locator("li.hit").first).to_be_visible()
        browser.close()


def test_the_api_docs_render_with_the_network_off(retriever):
    sync_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("fastapi_offline", reason="the serve extra ships Swagger UI's files")
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    with live_server(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        elsewhere: list[str] = []

        def only_the_server(route):  # the network is off: anything not from the server fails
            if route.request.url.startswith(url):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_server)
        page.goto(f"{url}/docs")
        sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text("ragkit")
        sync_api.expect(page.locator(".opblock-summary-path", has_text="/v1/search")).to_be_visible()
        browser.close()
    assert elsewhere == []
