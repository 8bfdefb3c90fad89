"""The Rewrites blade as an operator uses it in a real browser: open it from the menu, create a
rewrite set through the form (a condition added by its button), and see it listed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.conftest import one_site, screenshot, serving
from browser.test_layout import signed_in
from e2e.harness import Gateway
from helpers import gateway_url

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serving(tmp_path_factory, "rewrites", one_site().build()) as running:
        yield running


def test_create_a_rewrite_set_from_the_rewrites_blade(browser: Browser, gateway: Gateway) -> None:
    page: Page = signed_in(browser, gateway, 1280, 800)
    try:
        page.goto(f"{gateway.server.base_url}/portal/gateways/sub1/rg1/appgw/overview")
        page.get_by_role("navigation", name="Application gateway menu").get_by_role(
            "link", name="Rewrites"
        ).click()
        expect(page.locator("h1")).to_contain_text("Rewrites")
        page.get_by_role("link", name="+ Rewrite set").click()
        expect(page.locator("h1")).to_have_text("Create rewrite set")

        page.get_by_label("rule1").check()
        page.get_by_label("Rewrite rule name").fill("hsts")
        # A row button works while a required field (the set's name) is still empty.
        page.get_by_role("button", name="+ Add condition").click()
        # The form came back with the condition row, and what was typed.
        expect(page.get_by_label("Rewrite rule name")).to_have_value("hsts")
        expect(page.get_by_label("rule1")).to_be_checked()
        page.locator("#set_name").fill("securityHeaders")
        page.get_by_label("Server variable or header, row 1").fill("request_scheme")
        page.get_by_label("Pattern to match, row 1").fill("^https$")
        page.get_by_label("Rewrite type, row 1").select_option("response")
        page.get_by_label("Header name, row 1").fill("Strict-Transport-Security")
        page.get_by_label("Header value, row 1").fill("max-age=31536000")
        # Without a URL rewrite chosen, its fields are hidden (portal.js).
        expect(page.get_by_label("URL path value")).to_be_hidden()
        screenshot(page, "rewrites-create")
        page.get_by_role("button", name="Create").click()

        page.wait_for_url("**/rewrites")
        expect(page.get_by_role("status")).to_contain_text("Rewrite set 'securityHeaders' added.")
        row = page.locator("table.grid tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator('td[data-label="Name"]')).to_have_text("securityHeaders")
        expect(row.locator('td[data-label="Associated routing rules"]')).to_have_text("rule1")
        expect(row.locator('td[data-label="Rewrite rules"]')).to_have_text("1")
        screenshot(page, "rewrites-list")

        # Enter in a field saves the form (it does not press "+ Add condition", the first
        # button a browser would otherwise take).
        row.get_by_role("link", name="securityHeaders").click()
        expect(page.locator("h1")).to_have_text("Edit rewrite set")
        page.get_by_label("Rewrite rule name").fill("strictTransport")
        page.get_by_label("Rewrite rule name").press("Enter")
        page.wait_for_url("**/rewrites")
        expect(page.get_by_role("status")).to_contain_text("Rewrite set 'securityHeaders' saved.")

        with gateway.api() as api:
            stored = api.get(gateway_url()).json()["properties"]
        rules = stored["rewriteRuleSets"][0]["properties"]["rewriteRules"]
        assert [rule["name"] for rule in rules] == ["strictTransport"]
        assert rules[0]["conditions"][0]["variable"] == "var_request_scheme"
        assert rules[0]["actionSet"]["responseHeaderConfigurations"] == [
            {"headerName": "Strict-Transport-Security", "headerValue": "max-age=31536000"}
        ]
        assert stored["requestRoutingRules"][0]["properties"]["rewriteRuleSet"]["id"].endswith(
            "/rewriteRuleSets/securityHeaders"
        )
    finally:
        page.context.close()
