"""Overview's command bar as an operator uses it: Stop, Start, and Delete after typing the name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.conftest import one_site, screenshot, serving
from browser.test_layout import signed_in
from e2e.harness import Gateway

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serving(tmp_path_factory, "overview", one_site().build()) as running:
        yield running


def test_stop_start_and_delete_from_the_overview(browser: Browser, gateway: Gateway) -> None:
    page: Page = signed_in(browser, gateway, 1280, 800)
    try:
        page.goto(f"{gateway.server.base_url}/portal/gateways/sub1/rg1/appgw/overview")
        bar = page.get_by_role("toolbar", name="Commands")
        expect(bar.get_by_role("button", name="Start")).to_be_disabled()
        bar.get_by_role("button", name="Stop").click()
        expect(page.get_by_role("status")).to_contain_text("Application gateway 'appgw' stopped.")
        expect(page.locator(".essentials")).to_contain_text("Stopped")
        expect(bar.get_by_role("button", name="Stop")).to_be_disabled()
        bar.get_by_role("button", name="Start").click()
        expect(page.locator(".essentials")).to_contain_text("Running")
        bar.get_by_role("link", name="Refresh").click()
        expect(page.locator("h1")).to_contain_text("appgw")
        screenshot(page, "overview-after")

        bar.get_by_role("link", name="Delete").click()
        expect(page.locator("h1")).to_have_text("Delete application gateway appgw?")
        confirm = page.get_by_label("Type the application gateway name to confirm")
        confirm.fill("app")
        page.get_by_role("button", name="Delete").click()
        expect(page.locator("#confirm_name-error")).to_have_text(
            "Type the gateway's name, 'appgw', to delete it."
        )
        screenshot(page, "overview-delete-confirm")
        page.get_by_label("Type the application gateway name to confirm").fill("appgw")
        page.get_by_role("button", name="Delete").click()
        page.wait_for_url("**/portal/resources")
        expect(page.get_by_role("status")).to_contain_text("Application gateway 'appgw' deleted.")
    finally:
        page.context.close()
