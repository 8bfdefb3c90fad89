"""SSL profiles as an operator adds one in a real browser: SSL settings from the menu,
"+ Add SSL profile", a client CA chain uploaded with issuer DN verification, and the profile
listed with the issuer DN the server computed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from playwright.sync_api import Browser, Page, expect

from backends import free_port
from browser.conftest import one_site, screenshot, serving
from browser.test_layout import signed_in
from e2e.harness import Gateway
from helpers import gateway_url, make_pfx

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Gateway]:
    pfx = make_pfx(ca, "www.contoso.com")
    with serving(
        tmp_path_factory,
        "ssl-profiles",
        one_site()
        .certificate("site", pfx.b64, pfx.password)
        .listener("secure", free_port(), "Https", certificate="site")
        .rule("rule2", "secure", pool="pool", settings="settings")
        .build(),
    ) as running:
        yield running


def test_add_an_ssl_profile_from_ssl_settings(
    browser: Browser, gateway: Gateway, tmp_path: Path
) -> None:
    root = trustme.CA(organization_name="Contoso Clients Root")
    issuer = root.create_child_ca()
    chain = tmp_path / "contoso-clients.pem"
    chain.write_bytes(root.cert_pem.bytes() + issuer.cert_pem.bytes())
    leaf = tmp_path / "alice.pem"
    leaf.write_bytes(issuer.issue_cert("alice@contoso.test").cert_chain_pems[0].bytes())
    page: Page = signed_in(browser, gateway, 1280, 800)
    try:
        page.goto(f"{gateway.server.base_url}/portal/gateways/sub1/rg1/appgw/overview")
        page.get_by_role("navigation", name="Application gateway menu").get_by_role(
            "link", name="SSL settings"
        ).click()
        expect(page.locator("h1")).to_contain_text("SSL settings")
        page.get_by_role("link", name="+ Add SSL profile").click()
        expect(page.locator("h1")).to_have_text("Add SSL profile")

        page.locator("#profile_name").fill("mutual")
        page.get_by_label("Certificate name").fill("contoso-clients")
        file_field = "Client CA certificate (root, with intermediates if any)"
        page.get_by_label(file_field).set_input_files(str(leaf))
        page.get_by_label("Verify client certificate issuer's DN").check()
        # The predefined policies show for Predefined, the custom fields do not (portal.js).
        expect(page.get_by_label("Min protocol version")).to_be_hidden()
        page.get_by_label("AppGwSslPolicy20220101S").check()
        page.get_by_role("button", name="Add", exact=True).click()

        # A client's own certificate is refused next to the file; the rest stays as typed.
        expect(page.locator("#ca_file-error")).to_contain_text("is not a CA certificate")
        expect(page.locator("#profile_name")).to_have_value("mutual")
        expect(page.get_by_label("Verify client certificate issuer's DN")).to_be_checked()
        expect(page.get_by_label("AppGwSslPolicy20220101S")).to_be_checked()
        screenshot(page, "ssl-profile-leaf-refused")
        page.get_by_label(f"Choose another file ({file_field})").set_input_files(str(chain))
        screenshot(page, "ssl-profile-add")
        page.get_by_role("button", name="Add", exact=True).click()

        page.wait_for_url("**/ssl")
        expect(page.get_by_role("status")).to_contain_text("SSL profile 'mutual' added.")
        profile = page.locator("table.grid", has=page.locator("caption", has_text="SSL profiles"))
        row = profile.locator("tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator('td[data-label="Name"]')).to_have_text("mutual")
        expect(row.locator('td[data-label="Client authentication"]')).to_have_text(
            "On, issuer's DN verified"
        )
        expect(row.locator('td[data-label="SSL policy"]')).to_have_text("AppGwSslPolicy20220101S")
        with gateway.api() as api:
            stored = api.get(gateway_url()).json()["properties"]
        computed = stored["trustedClientCertificates"][0]["properties"]["clientCertIssuerDN"]
        # The intermediate issues the clients: its subject is the DN verified.
        assert (
            computed
            == x509.load_pem_x509_certificate(issuer.cert_pem.bytes()).subject.rfc4514_string()
        )
        certificates = page.locator(
            "table.grid", has=page.locator("caption", has_text="Trusted client certificates")
        )
        expect(
            certificates.locator('td[data-label="Client certificate issuer\'s DN"]')
        ).to_have_text(computed)
        page.locator("#ssl-profiles").scroll_into_view_if_needed()
        screenshot(page, "ssl-settings-profiles")

        # The HTTPS listener takes the profile: Azure's "Enable SSL Profile".
        page.get_by_role("navigation", name="Application gateway menu").get_by_role(
            "link", name="Listeners"
        ).click()
        page.get_by_role("link", name="secure", exact=True).click()
        expect(page.get_by_label("SSL Profile", exact=True)).to_be_hidden()
        page.get_by_label("Enable SSL Profile").check()
        page.get_by_label("SSL Profile", exact=True).select_option("mutual")
        screenshot(page, "listener-ssl-profile")
        page.get_by_role("button", name="Save").click()
        page.wait_for_url("**/listeners")
        with gateway.api() as api:
            listeners = api.get(gateway_url()).json()["properties"]["httpListeners"]
        secure = next(listener for listener in listeners if listener["name"] == "secure")
        assert secure["properties"]["sslProfile"]["id"].endswith("/sslProfiles/mutual")
        page.get_by_role("link", name="SSL settings").click()
        expect(row.locator('td[data-label="Listeners"]')).to_have_text("secure")
    finally:
        page.context.close()
