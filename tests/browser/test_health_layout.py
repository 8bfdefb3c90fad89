"""Backend health with real certificate chains fits a desktop: "More details" opens full-width
under its row and a SHA-256 fingerprint wraps instead of widening the page."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import trustme
from playwright.sync_api import Browser, expect

from backends import free_port, wait_until
from browser.conftest import screenshot
from builders import GatewayBuilder
from e2e.harness import Gateway, backend_presenting, issued, self_signed_leaf
from helpers import TOKEN, cer_b64, start_serve

pytestmark = pytest.mark.slow

BACKEND_NAME = "backend.contoso.test"


def unhealthy_gateway(name: str, port: int, *, v1: bool) -> GatewayBuilder:
    """HTTPS settings the backend's certificate does not satisfy, so the row has details."""
    builder = GatewayBuilder(name, v1=v1)
    if v1:
        _, _, other_leaf = self_signed_leaf(BACKEND_NAME)  # not the leaf the backend sends
        builder.authentication_certificate("backendLeaf", base64.b64encode(other_leaf).decode())
        trust = {"authenticationCertificates": ["backendLeaf"]}
    else:
        builder.trusted_root("uploadedRoot", cer_b64(trustme.CA(organization_name="Other")))
        trust = {"trustedRootCertificates": ["uploadedRoot"], "hostName": BACKEND_NAME}
    return (
        builder.pool("appGatewayBackendPool", "127.0.0.1")
        .settings("appGatewayBackendHttpSettings", port, "Https", **trust)
        .listener("appGatewayHttpListener", free_port(), "Http")
        .rule(
            "rule1",
            "appGatewayHttpListener",
            pool="appGatewayBackendPool",
            settings="appGatewayBackendHttpSettings",
        )
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_serve(
        tmp_path_factory.mktemp("health") / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1
    )
    running = Gateway(server, workers=1)
    # A chain of three: leaf, intermediate, root, each with a fingerprint and validity times.
    chained = backend_presenting("chained", *issued(trustme.CA().create_child_ca(), BACKEND_NAME))
    leaf_pems, key, _ = self_signed_leaf(BACKEND_NAME)
    single = backend_presenting("single", leaf_pems, key)
    try:
        running.apply(unhealthy_gateway("v2gw", chained.port, v1=False).build(), name="v2gw")
        running.apply(unhealthy_gateway("v1gw", single.port, v1=True).build(), name="v1gw")
        yield running
    finally:
        chained.stop()
        single.stop()
        server.stop()


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (1440, 900)])
@pytest.mark.parametrize("name", ["v1gw", "v2gw"])
def test_details_open_full_width_without_horizontal_scroll(
    browser: Browser, gateway: Gateway, name: str, width: int, height: int
) -> None:
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    try:
        page.goto(f"{gateway.server.base_url}/portal/signin")
        page.get_by_label("Admin token").fill(TOKEN)
        page.keyboard.press("Enter")
        page.wait_for_url("**/portal/resources")
        health = f"{gateway.server.base_url}/portal/gateways/sub1/rg1/{name}/health"

        def reported() -> bool:
            page.goto(health)
            return page.locator(".health-extra .fingerprint").count() > 0

        wait_until(reported, timeout=30, what=f"{name}'s presented chain in backend health")
        expect(page.get_by_text("Unhealthy").first).to_be_visible()
        page.get_by_text("More details").first.click()
        fingerprint = page.locator(".fingerprint").first
        expect(fingerprint).to_be_visible()
        screenshot(page, f"health-details-{name}-{width}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} health scrolls sideways by {overflow}px at {width}px"
        # The details span the row, so they are as wide as the grid, not as its last column.
        grid = page.locator(".health-grid").bounding_box()
        details = page.locator(".health-extra").first.bounding_box()
        assert grid is not None and details is not None
        assert details["width"] > grid["width"] * 0.9
        # A timestamp stays on one line instead of five.
        heights = page.evaluate(
            """[...document.querySelectorAll('.health-extra dd')]
               .filter(e => /^\\d{4}-\\d\\d-\\d\\dT/.test(e.textContent))
               .map(e => e.getBoundingClientRect().height)"""
        )
        assert heights and max(heights) < 30, heights
    finally:
        page.context.close()
