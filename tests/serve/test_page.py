"""The page at GET /, in a real headless Chromium (Chrome DevTools Protocol): type a text, submit it, read the
probability bars, and save a screenshot. Skipped where Chromium is not installed (apt-get install chromium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("websockets")

from support.browser import CHROMIUM, Browser
from support.paths import ROOT
from support.serving import running_server

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
TEXT = "a gripping , beautifully acted film"
ROWS = (
    "[...document.querySelectorAll('#result .row')].map(r => [r.dataset.label, "
    "r.querySelector('.prob').textContent, r.classList.contains('chosen'), r.querySelector('.fill').style.width])"
)


@pytest.fixture
def browser():
    opened = Browser()
    yield opened
    opened.close()


def test_page_classifies_a_typed_text(trained_sst2, browser, tmp_path):
    with running_server(trained_sst2.run_dir, log_dir=tmp_path) as server:
        browser.open(server.url + "/")
        browser.wait_for("document.querySelectorAll('#metrics tr').length > 0")
        metrics = dict(
            browser.evaluate(
                "[...document.querySelectorAll('#metrics tr')]"
                ".map(r => [r.cells[0].textContent, r.cells[1].textContent])"
            )
        )
        assert metrics["valid accuracy"] == f"{trained_sst2.valid['accuracy']:.4f}"
        assert browser.wait_for(
            "document.querySelectorAll('#plots img').length === 2 && "
            "[...document.querySelectorAll('#plots img')].every(i => i.complete && i.naturalWidth)"
        )

        browser.type_into("#text", TEXT)
        assert browser.evaluate("document.getElementById('text').value") == TEXT
        browser.click("#submit")
        browser.wait_for("document.body.dataset.state === 'answered'")
        rows = browser.evaluate(ROWS)

        expected = httpx.post(f"{server.url}/v1/predict", json={"texts": [TEXT], "top_k": 2}).json()["predictions"][0]
        assert [r[0] for r in rows] == [t["label"] for t in expected["top_k"]]
        assert [float(r[1]) for r in rows] == [round(t["probability"], 3) for t in expected["top_k"]]
        assert [r[2] for r in rows] == [True, False]  # the predicted label is marked
        assert float(rows[0][3].rstrip("%")) == pytest.approx(100 * expected["probability"], abs=0.06)
        # nothing came from anywhere but the server (no CDN, no fonts)
        assert browser.requested and all(url.startswith((server.url, "blob:", "data:")) for url in browser.requested)

        shot = browser.screenshot(tmp_path / "serve-page.png")
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
        if os.environ.get("LLMCLS_SAVE_SCREENSHOT"):  # refresh the README's picture
            shutil.copy(shot, ROOT / "docs" / "serve-page.png")


def test_page_asks_for_the_token_when_the_server_wants_one(trained_sst2, browser, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("page-token")
    with running_server(trained_sst2.run_dir, "--token-file", str(token_file), log_dir=tmp_path) as server:
        browser.open(server.url + "/")
        browser.wait_for("!document.getElementById('token-row').hidden")
        browser.type_into("#token", "page-token")
        browser.type_into("#text", "dull")
        browser.click("#submit")
        browser.wait_for("document.body.dataset.state === 'answered'")
        assert len(browser.evaluate(ROWS)) >= 1
