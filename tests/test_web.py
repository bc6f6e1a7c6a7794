"""The web page in a real browser: Debian's Chromium driven by Playwright, real Piper."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from speakstream.engines import Engine
from tests.conftest import RunningServer, running_server

CHROMIUM = os.environ.get("SPEAKSTREAM_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (scripts/test.sh installs it)",
    ),
]


@pytest.fixture
async def page(piper_engine: Engine) -> AsyncIterator[tuple[Any, RunningServer]]:
    from playwright.async_api import async_playwright

    async with running_server(piper_engine) as srv, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        tab = await browser.new_page(viewport={"width": 420, "height": 900})  # phone-sized
        await tab.goto(f"http://127.0.0.1:{srv.port}/")
        await tab.wait_for_function("window.speakstreamStats && window.speakstreamStats.ready")
        try:
            yield tab, srv
        finally:
            await browser.close()


async def stats(tab: Any) -> dict[str, Any]:
    result: dict[str, Any] = await tab.evaluate("() => ({...window.speakstreamStats})")
    return result


async def test_typing_speaks_and_the_page_shows_first_audio(
    page: tuple[Any, RunningServer],
) -> None:
    tab, _ = page
    await tab.get_by_label("Text").press_sequentially(
        "Hello there, this is typed in a browser. ", delay=40
    )
    await tab.wait_for_function("window.speakstreamStats.frames > 0")
    await tab.wait_for_function("window.speakstreamStats.playedMs > 300")  # the playback clock runs
    ttfa = await tab.locator("#ttfa").text_content()
    assert ttfa is not None and ttfa.endswith(" ms") and int(ttfa.split()[0]) > 0
    assert await tab.locator("#segments li").count() >= 1
    await tab.wait_for_function("document.querySelectorAll('#spoken span').length >= 3")  # timings
    ARTIFACTS.mkdir(exist_ok=True)
    await tab.screenshot(path=str(ARTIFACTS / "web-after-speaking.png"), full_page=True)
    assert (await stats(tab))["errors"] == []


async def test_cancel_stops_playback_and_nothing_later_plays(
    page: tuple[Any, RunningServer],
) -> None:
    tab, _ = page
    await tab.get_by_role("button", name="Stream sample text like an LLM").click()
    await tab.wait_for_function("window.speakstreamStats.playedMs > 200")
    await tab.get_by_role("button", name="Cancel (barge in)").click()
    await tab.wait_for_timeout(100)  # let the player report its last position
    before = await stats(tab)
    await tab.wait_for_timeout(1500)  # the sample text had seconds of speech left
    after = await stats(tab)
    assert after["playedMs"] == pytest.approx(before["playedMs"], abs=150)  # stopped
    assert after["cancelled"] == 1
    status = await tab.locator("#status").text_content()
    assert status == "Cancelled."


async def test_opus_plays_through_webcodecs(page: tuple[Any, RunningServer]) -> None:
    tab, _ = page
    await tab.get_by_label("Format").select_option("opus_packets")
    await tab.get_by_label("Text").press_sequentially("Opus in the browser. ", delay=30)
    await tab.wait_for_function("window.speakstreamStats.playedMs > 300")
    assert (await stats(tab))["errors"] == []


async def test_keyboard_and_labels(page: tuple[Any, RunningServer]) -> None:
    tab, _ = page
    for label in (
        "Text",
        "Voice",
        "Format",
        "Speed",
        "First segment, characters",
        "Second segment, characters",
    ):
        assert await tab.get_by_label(label).count() == 1, label
    await tab.keyboard.press("Tab")
    focused = await tab.evaluate("document.activeElement.id")
    assert focused  # something focusable comes first


async def test_a_server_with_keys_asks_for_one(piper_engine: Engine) -> None:
    from playwright.async_api import async_playwright

    from speakstream.config import Settings

    settings = Settings(log_level="warning", api_keys="web:page-key")
    async with running_server(piper_engine, settings) as srv, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            tab = await browser.new_page()
            await tab.goto(f"http://127.0.0.1:{srv.port}/")
            key = tab.get_by_label("API key")
            await key.wait_for(state="visible")
            await tab.wait_for_function(
                "document.getElementById('status').textContent.includes('API key')"
            )
            await key.fill("wrong-key")
            await tab.get_by_role("button", name="Connect").click()
            await tab.wait_for_timeout(300)
            assert not (await stats(tab))["ready"]
            await key.fill("page-key")
            await tab.get_by_role("button", name="Connect").click()
            await tab.wait_for_function("window.speakstreamStats.ready")  # token in the query
            await tab.get_by_label("Text").press_sequentially("With a key. ", delay=30)
            await tab.wait_for_function("window.speakstreamStats.frames > 0")
        finally:
            await browser.close()
