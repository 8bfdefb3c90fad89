"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's Python API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from backends import free_port
from builders import GatewayBuilder
from e2e.harness import Gateway
from helpers import TOKEN, start_serve

CHROMIUM = "/usr/bin/chromium"
# Chromium's background services try to reach Google; this machine's network refuses them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


# Module scope: Playwright's sync API keeps an event loop running in this thread until it
# stops, and later asyncio-based tests in the same process need the thread free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def one_site() -> GatewayBuilder:
    """A plain HTTP gateway to start a screen test from (nothing listens behind it)."""
    return (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", free_port(), "Http")
        .listener("listener", free_port(), "Http")
        .rule("rule1", "listener", pool="pool", settings="settings")
    )


@contextmanager
def serving(
    tmp_path_factory: pytest.TempPathFactory, label: str, document: dict[str, Any]
) -> Iterator[Gateway]:
    """`appgw serve` with one worker, serving `document`, for one test."""
    server = start_serve(
        tmp_path_factory.mktemp(label) / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1
    )
    try:
        running = Gateway(server, workers=1)
        running.apply(document)
        yield running
    finally:
        server.stop()
