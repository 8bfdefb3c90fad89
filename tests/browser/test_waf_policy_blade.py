"""A WAF policy as an operator makes one in a real browser: "+ Create WAF policy" from All
resources, a custom rule whose bad IP is named under its field, the policy associated from the
gateway's Web application firewall blade, seen under Associations, and its delete refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from browser.conftest import one_site, screenshot, serving
from browser.test_layout import signed_in
from e2e.harness import Gateway

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    document = one_site().build()
    props = document["properties"]
    props["sku"] = {"name": "WAF_v2", "tier": "WAF_v2", "capacity": 1}
    props["webApplicationFirewallConfiguration"] = {
        "enabled": True,
        "firewallMode": "Detection",
        "ruleSetType": "OWASP",
        "ruleSetVersion": "3.2",
    }
    with serving(tmp_path_factory, "waf-policy", document) as running:
        yield running


def test_create_a_policy_and_associate_it(browser: Browser, gateway: Gateway) -> None:
    page = signed_in(browser, gateway, 1280, 800)
    try:
        page.get_by_role("link", name="+ Create WAF policy").click()
        expect(page.locator("h1")).to_have_text("Create a WAF policy")
        page.get_by_label("Subscription").fill("sub1")
        page.get_by_label("Resource group").fill("rg1")
        page.get_by_label("Policy name").fill("shop-policy")
        page.get_by_label("Prevention").check()
        page.get_by_role("button", name="Create").click()
        page.wait_for_url("**/wafpolicies/sub1/rg1/shop-policy/settings")
        expect(page.get_by_role("status")).to_contain_text("WAF policy 'shop-policy' created.")
        expect(page.get_by_label("Prevention")).to_be_checked()

        menu = page.get_by_role("navigation", name="WAF policy menu")
        menu.get_by_role("link", name="Custom rules").click()
        page.get_by_role("link", name="+ Add custom rule").click()
        page.get_by_label("Custom rule name").fill("BlockOffice")
        page.get_by_label("Match values").fill("10.0.0.0/8\n10.0.0.300")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.locator("#c0_values-error")).to_contain_text("'10.0.0.300': not an IP")
        screenshot(page, "waf-policy-custom-rule-refused")
        page.get_by_label("Match values").fill("10.0.0.0/8")
        page.get_by_role("button", name="Add", exact=True).click()
        page.wait_for_url("**/shop-policy/custom")
        expect(page.locator("#custom-rules")).to_contain_text("RemoteAddr IPMatch 10.0.0.0/8")

        page.goto(f"{gateway.server.base_url}/portal/gateways/sub1/rg1/appgw/waf")
        page.get_by_label("Associated WAF policy").select_option(label="shop-policy (rg1)")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("Saved the web application firewall")

        page.get_by_role("link", name="Open the WAF policy").click()
        menu.get_by_role("link", name="Associations").click()
        expect(page.locator("#associations")).to_contain_text("appgw")
        menu.get_by_role("link", name="Delete").click()
        page.get_by_role("button", name="Delete", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("was not deleted")
        expect(page.get_by_role("alert")).to_contain_text("is linked by")
        screenshot(page, "waf-policy-delete-refused")
    finally:
        page.context.close()
