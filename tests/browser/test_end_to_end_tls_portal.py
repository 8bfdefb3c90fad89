"""The Azure article's portal procedures, clicked through in a real browser, with real files
uploaded; after each save a real HTTPS request checks the traffic."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Locator, Page, expect

from backends import Backend, free_port, wait_until
from browser.conftest import screenshot
from builders import GatewayBuilder
from e2e.harness import Gateway, backend_presenting, get, issued, self_signed_leaf
from helpers import TOKEN, cer_b64, gateway_url, make_pfx, start_serve

pytestmark = pytest.mark.slow

SITE = "www.contoso.test"
BACKEND_NAME = "backend.contoso.test"
GATEWAY = "/portal/gateways/sub1/rg1/appgw"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("portal") / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1)
    try:
        yield Gateway(server, workers=1)
    finally:
        server.stop()


def sign_in(page: Page, gateway: Gateway) -> None:
    page.goto(f"{gateway.server.base_url}/")
    expect(page.get_by_label("Admin token")).to_be_visible()
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="All resources")).to_be_visible()


def files(tmp_path: Path, ca: trustme.CA, backend_ca: trustme.CA) -> dict[str, Path]:
    pfx = make_pfx(ca, SITE, password="Portal1Pass")
    paths = {
        "pfx": tmp_path / "appgw.pfx",
        "cer": tmp_path / "backend-root.cer",
        "garbage": tmp_path / "garbage.cer",
    }
    paths["pfx"].write_bytes(base64.b64decode(pfx.b64))
    root = x509.load_pem_x509_certificate(backend_ca.cert_pem.bytes())
    paths["cer"].write_bytes(
        base64.b64encode(root.public_bytes(serialization.Encoding.DER))  # Azure's .cer form
    )
    paths["garbage"].write_bytes(b"this is not a certificate\n" * 10)
    return paths


def save_https_listener(page: Page, pfx: Path, password: str) -> None:
    """On the listener form: HTTPS with the uploaded PFX as appGatewaySslCert, then Save."""
    page.get_by_label("HTTPS").check()
    page.get_by_label("PFX certificate file").set_input_files(str(pfx))
    page.get_by_label("Certificate name").fill("appGatewaySslCert")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Save").click()


def trust_uploaded_cer(page: Page, cer: Path) -> None:
    """On the backend settings form: HTTPS trusting a new uploaded root, backendRoot."""
    page.get_by_label("HTTPS").check()
    page.get_by_label("No").first.check()  # Use well known CA certificate: No
    page.get_by_label("Name", exact=True).fill("backendRoot")
    page.get_by_label("Upload CER certificate").set_input_files(str(cer))


def test_enable_end_to_end_tls_for_an_existing_gateway(
    gateway: Gateway, page: Page, tmp_path: Path
) -> None:
    """Article: add HTTPS to a running HTTP gateway (listener with a PFX), then switch
    appGatewayBackendHttpSettings to HTTPS and upload the backend's root CER."""
    ca, backend_ca = trustme.CA(), trustme.CA(organization_name="Backend Root")
    uploads = files(tmp_path, ca, backend_ca)
    plain = Backend("plain").start()
    secure = backend_presenting("secure", *issued(backend_ca, BACKEND_NAME))
    port = free_port()
    try:
        gateway.apply(
            GatewayBuilder()
            .pool("appGatewayBackendPool", "127.0.0.1")
            .settings("appGatewayBackendHttpSettings", plain.port, "Http")
            .listener("appGatewayHttpListener", port, "Http")
            .rule(
                "rule1",
                "appGatewayHttpListener",
                pool="appGatewayBackendPool",
                settings="appGatewayBackendHttpSettings",
            )
            .build()
        )
        assert get(port, SITE).json()["backend"] == "plain"
        sign_in(page, gateway)
        page.get_by_role("link", name="appgw").last.click()
        expect(page.get_by_role("heading", name="appgw")).to_be_visible()
        screenshot(page, "overview")

        # Listeners -> the listener -> Protocol HTTPS -> upload the PFX -> Save
        page.get_by_role("link", name="Listeners").click()
        screenshot(page, "listeners")
        page.get_by_role("link", name="appGatewayHttpListener").click()
        # A wrong password first: the error sits on the password field and nothing is stored.
        save_https_listener(page, uploads["pfx"], "wrong-password")
        expect(page.locator("#cert_password-error")).to_contain_text("password")
        screenshot(page, "listener-wrong-password")
        with gateway.api() as api:
            stored = api.get(gateway_url()).json()
        assert stored["properties"]["sslCertificates"] == []
        # The PFX is kept from that submit: the fix is the password alone.
        expect(page.locator("#cert_file-kept")).to_contain_text("appgw.pfx")
        page.get_by_label("Password").fill("Portal1Pass")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("saved")
        assert gateway.wait_current() == 2
        response = get(port, SITE, https=True, ca=ca)
        assert response.status_code == 200 and response.json()["backend"] == "plain"

        # Backend settings -> appGatewayBackendHttpSettings -> HTTPS, upload the root CER.
        page.get_by_role("link", name="Backend settings").click()
        screenshot(page, "backend-settings")
        page.get_by_role("link", name="appGatewayBackendHttpSettings").click()
        # A garbage file first: the error sits on the file field.
        trust_uploaded_cer(page, uploads["garbage"])
        page.get_by_label("Backend port").fill(str(secure.port))
        page.get_by_label("Override with specific domain name").check()
        page.get_by_label("Host name", exact=True).fill(BACKEND_NAME)
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#cer_file-error")).to_contain_text("certificate")
        screenshot(page, "backend-settings-garbage-cer")
        trust_uploaded_cer(page, uploads["cer"])
        page.get_by_role("button", name="Save").click()
        screenshot(page, "after-cer-save")
        expect(page.get_by_role("status")).to_contain_text("saved")
        assert gateway.wait_current() == 3
        response = get(port, SITE, https=True, ca=ca)
        assert response.status_code == 200
        seen = response.json()
        assert seen["backend"] == "secure" and seen["tls"] and seen["sni"] == BACKEND_NAME
    finally:
        plain.stop()
        secure.stop()


def test_settings_trust_several_roots(gateway: Gateway, page: Page) -> None:
    """Azure allows several trusted roots: ticking a second one (the one that signed the
    backend) next to the first makes the backend reachable, and both stay ticked."""
    first, second = trustme.CA(), trustme.CA(organization_name="Second Root")
    secure = backend_presenting("secure", *issued(second, BACKEND_NAME))
    port = free_port()
    try:
        gateway.apply(
            GatewayBuilder()
            .trusted_root("rootA", cer_b64(first))
            .trusted_root("rootB", cer_b64(second))
            .pool("pool", "127.0.0.1")
            .settings(
                "settings",
                secure.port,
                "Https",
                hostName=BACKEND_NAME,
                trustedRootCertificates=["rootA"],
            )
            .listener("listener", port, "Http")
            .rule("rule1", "listener", pool="pool", settings="settings")
            .build()
        )
        assert get(port, SITE).status_code == 502, "rootA did not sign the backend"
        sign_in(page, gateway)
        page.goto(f"{gateway.server.base_url}{GATEWAY}/settings/settings/edit")
        roots = page.get_by_role("group", name="Trusted root certificates")
        expect(roots.get_by_label("rootA")).to_be_checked()
        roots.get_by_label("rootB").check()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("saved")
        gateway.wait_current()
        with gateway.api() as api:
            trusted = api.get(gateway_url()).json()["properties"]["backendHttpSettingsCollection"]
        assert [
            r["id"].rsplit("/", 1)[1] for r in trusted[0]["properties"]["trustedRootCertificates"]
        ] == [
            "rootA",
            "rootB",
        ]
        response = get(port, SITE)
        assert response.status_code == 200 and response.json()["backend"] == "secure"
        page.goto(f"{gateway.server.base_url}{GATEWAY}/settings/settings/edit")
        expect(roots.get_by_label("rootA")).to_be_checked()
        expect(roots.get_by_label("rootB")).to_be_checked()
        screenshot(page, "backend-settings-two-roots")
    finally:
        secure.stop()


def test_a_form_without_its_csrf_token_is_refused(gateway: Gateway, page: Page) -> None:
    gateway.apply(
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", free_port(), "Http")
        .listener("listener", free_port(), "Http")
        .rule("rule1", "listener", pool="pool", settings="settings")
        .build()
    )
    sign_in(page, gateway)
    page.goto(f"{gateway.server.base_url}{GATEWAY}/listeners/add")
    with gateway.api() as api:
        before = api.get(gateway_url()).json()["etag"]
    page.evaluate("document.querySelectorAll('main input[name=csrf]').forEach(e => e.remove())")
    page.get_by_label("Listener name").fill("sneaky")
    page.get_by_label("Port").fill("8088")
    page.get_by_role("button", name="Add").click()
    screenshot(page, "csrf-refused")
    expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
    with gateway.api() as api:
        assert api.get(gateway_url()).json()["etag"] == before


def next_tab(page: Page, title: str) -> None:
    """Next : `title`, and the wizard shows that tab."""
    page.get_by_role("button", name=f"Next : {title}").click()
    expect(page.locator("[aria-current=step]")).to_have_text(title)


def footer_button(page: Page, name: str) -> Locator:
    """A button of the wizard's footer (the tabs above have their own Review + create)."""
    return page.locator(".wizard-footer").get_by_role("button", name=name, exact=True)


def stopped_on_tab_with_errors(page: Page, title: str) -> None:
    current = page.locator("[aria-current=step]")
    expect(current).to_contain_text(title)
    expect(current.locator(".tab-error")).to_be_visible()
    expect(page.locator("#error-summary")).to_be_visible()


def fill_create_wizard(page: Page, name: str, listener_port: int) -> None:
    """Basics, Frontends and Backends as the article fills them; stops on Configuration."""
    page.get_by_role("link", name="Create application gateway").click()
    expect(page.locator("[aria-current=step]")).to_have_text("Basics")
    page.get_by_label("Subscription").fill("sub1")
    page.get_by_label("Resource group").fill("rg1")
    page.get_by_label("Application gateway name").fill(name)
    next_tab(page, "Frontends")
    page.get_by_label("Private", exact=True).check()
    page.get_by_label("Private IP address").fill("127.0.0.1")
    next_tab(page, "Backends")
    page.locator("input[name=pool_empty][value=no]").check()
    page.get_by_label("Target 1 (IP address or FQDN)").fill("127.0.0.1")
    next_tab(page, "Configuration")
    page.get_by_label("Rule name").fill("rule1")
    page.get_by_label("Listener name").fill("appGatewayHttpListener")
    page.locator("input[name=listener_protocol][value=Https]").check()
    page.get_by_label("Port (HTTPS)", exact=True).fill(str(listener_port))


def test_create_a_new_gateway_with_end_to_end_tls(
    gateway: Gateway, page: Page, tmp_path: Path
) -> None:
    """Article: create the gateway in the wizard, tab by tab, with an HTTPS listener (PFX +
    password) and HTTPS backend settings that trust the backend's root (.cer). A wrong
    password is found at Review + create, on its field: the files stay chosen, so the fix is
    the password alone."""
    ca, backend_ca = trustme.CA(), trustme.CA(organization_name="Backend Root")
    uploads = files(tmp_path, ca, backend_ca)
    secure = backend_presenting("secure", *issued(backend_ca, BACKEND_NAME))
    port = free_port()
    try:
        sign_in(page, gateway)
        fill_create_wizard(page, "myAppGateway", port)
        page.get_by_label("PFX certificate file").set_input_files(str(uploads["pfx"]))
        page.locator("input[name=cert_name]").fill("appGatewaySslCert")
        page.get_by_label("Password").fill("not-the-password")
        page.locator("input[name=settings_protocol][value=Https]").check()
        page.get_by_label("Backend port (HTTPS)").fill(str(secure.port))
        page.locator("input[name=well_known][value=no]").check()
        page.get_by_label("CER certificate").set_input_files(str(uploads["cer"]))
        page.locator("input[name=backend_cer_name]").fill("backendRoot")
        screenshot(page, "create-wizard")
        next_tab(page, "Tags")
        page.get_by_label("Name, row 1").fill("environment")
        page.get_by_label("Value, row 1").fill("test")
        page.get_by_role("button", name="Next : Review + create").click()
        # Validation ran the PUT's checks: the password is refused, on Configuration.
        stopped_on_tab_with_errors(page, "Configuration")
        expect(page.locator("#cert_password-error")).to_be_visible()
        expect(page.locator("#cert_file-kept")).to_contain_text("appgw.pfx")
        expect(page.locator("#backend_cer-kept")).to_contain_text("backend-root.cer")
        screenshot(page, "create-wizard-kept-files")
        page.get_by_label("Password").fill("Portal1Pass")
        footer_button(page, "Review + create").click()
        expect(page.get_by_role("status")).to_contain_text("Validation passed")
        summary = page.locator(".summary")
        for text in ("myAppGateway", "appGatewaySslCert", "backendRoot", "environment", "test"):
            expect(summary).to_contain_text(text)
        screenshot(page, "create-wizard-review")
        with gateway.api() as api:  # Review wrote nothing
            assert api.get(gateway_url("myAppGateway")).status_code == 404
        footer_button(page, "Create").click()
        expect(page.get_by_role("heading", name="myAppGateway")).to_be_visible()
        screenshot(page, "created-overview")
        gateway.wait_current("myAppGateway")
        with gateway.api() as api:
            created = api.get(gateway_url("myAppGateway")).json()
        assert created["tags"] == {"environment": "test"}
        # The wizard's settings have no host name: SNI and the checked name come from the
        # request's Host, so the client asks for the backend's name here.
        response = get(port, BACKEND_NAME, https=True, ca=None, sni=BACKEND_NAME)
        assert response.status_code == 200, response.text
        assert response.json()["backend"] == "secure" and response.json()["tls"]
    finally:
        secure.stop()


def test_the_wizard_checks_each_tab_before_going_on(gateway: Gateway, page: Page) -> None:
    """Next checks the tab it leaves; Previous checks nothing and keeps what was typed."""
    sign_in(page, gateway)
    page.get_by_role("link", name="Create application gateway").click()
    page.get_by_label("Resource group").fill("rg1")
    page.get_by_role("button", name="Next : Frontends").click()
    stopped_on_tab_with_errors(page, "Basics")
    expect(page.locator("#gateway_name-error")).to_contain_text("Enter a name")
    page.get_by_label("Application gateway name").fill("bad name!")
    page.get_by_role("button", name="Next : Frontends").click()
    expect(page.locator("#gateway_name-error")).to_be_visible()
    page.get_by_label("Application gateway name").fill("tabbed")
    page.get_by_label("Application gateway name").press("Enter")  # Enter goes on, as Next
    expect(page.locator("[aria-current=step]")).to_have_text("Frontends")
    page.get_by_label("Private", exact=True).check()
    page.get_by_label("Private IP address").fill("not an address")
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("[aria-current=step]")).to_have_text("Basics")
    expect(page.get_by_label("Application gateway name")).to_have_value("tabbed")
    # Review + create from Basics checks every tab and stops at the first with a problem.
    footer_button(page, "Review + create").click()
    stopped_on_tab_with_errors(page, "Frontends")
    expect(page.locator("#private_ip-error")).to_contain_text("not an IPv4 or IPv6 address")
    screenshot(page, "create-wizard-tab-error")
    with gateway.api() as api:
        assert api.get(gateway_url("tabbed")).status_code == 404


def test_create_a_v1_gateway_shows_only_v1_fields(
    gateway: Gateway, page: Page, tmp_path: Path
) -> None:
    """Standard (v1) in the wizard: a size instead of priority and the well-known CA choice; the
    defaults create, and the backend's own certificate (authentication certificate) is trusted."""
    chain, key, leaf_der = self_signed_leaf(BACKEND_NAME)
    leaf = tmp_path / "backend.cer"
    leaf.write_bytes(base64.b64encode(leaf_der))
    secure = backend_presenting("secure-v1", chain, key)
    port = free_port()
    try:
        sign_in(page, gateway)
        page.get_by_role("link", name="Create application gateway").click()
        page.get_by_label("Standard (v1)").check()
        # The fields switch at once: v1 has sizes (and, on Configuration, no priority and no
        # well-known CAs).
        expect(page.get_by_label("Medium")).to_be_checked()
        page.get_by_label("Subscription").fill("sub1")
        page.get_by_label("Resource group").fill("rg1")
        page.get_by_label("Application gateway name").fill("myV1Gateway")
        next_tab(page, "Frontends")
        page.get_by_label("Private", exact=True).check()
        next_tab(page, "Backends")
        page.locator("input[name=pool_empty][value=no]").check()
        page.get_by_label("Target 1 (IP address or FQDN)").fill("127.0.0.1")
        next_tab(page, "Configuration")
        expect(page.get_by_label("Priority")).to_be_hidden()
        page.get_by_label("Port", exact=True).fill(str(port))
        page.locator("input[name=settings_protocol][value=Https]").check()
        expect(page.locator("input[name=well_known]").first).to_be_hidden()
        page.get_by_label("Backend port (HTTPS)").fill(str(secure.port))
        page.get_by_label("CER certificate").set_input_files(str(leaf))
        page.locator("input[name=backend_cer_name]").fill("backendLeaf")
        screenshot(page, "create-wizard-v1")
        footer_button(page, "Review + create").click()
        expect(page.get_by_role("status")).to_contain_text("Validation passed")
        expect(page.locator(".summary")).to_contain_text("Standard_Medium")
        expect(page.locator(".summary")).to_contain_text("Authentication certificate")
        footer_button(page, "Create").click()
        expect(page.get_by_role("heading", name="myV1Gateway")).to_be_visible()
        gateway.wait_current("myV1Gateway")
        with gateway.api() as api:
            props = api.get(gateway_url("myV1Gateway")).json()["properties"]
        assert props["sku"]["name"] == "Standard_Medium"
        assert "priority" not in props["requestRoutingRules"][0]["properties"]
        response = get(port, SITE)
        assert response.status_code == 200, response.text
        assert response.json()["backend"] == "secure-v1" and response.json()["tls"]
    finally:
        secure.stop()


def test_a_wrong_backend_certificate_shows_in_backend_health(
    gateway: Gateway, page: Page, tmp_path: Path
) -> None:
    backend_ca, other_ca = trustme.CA(), trustme.CA(organization_name="Unrelated Root")
    secure = backend_presenting("secure", *issued(backend_ca.create_child_ca(), BACKEND_NAME))
    try:
        gateway.apply(
            GatewayBuilder("wrongroot")
            .trusted_root("uploadedRoot", cer_b64(other_ca))  # not the backend's root
            .pool("appGatewayBackendPool", "127.0.0.1")
            .settings(
                "appGatewayBackendHttpSettings",
                secure.port,
                "Https",
                hostName=BACKEND_NAME,
                trustedRootCertificates=["uploadedRoot"],
            )
            .listener("appGatewayHttpListener", free_port(), "Http")
            .rule(
                "rule1",
                "appGatewayHttpListener",
                pool="appGatewayBackendPool",
                settings="appGatewayBackendHttpSettings",
            )
            .build(),
            name="wrongroot",
        )
        sign_in(page, gateway)
        health = f"{gateway.server.base_url}/portal/gateways/sub1/rg1/wrongroot/health"

        def shown() -> bool:
            page.goto(health)
            return (
                "root" in (page.locator("table").inner_text() or "")
                and page.get_by_text("Unhealthy").count() > 0
            )

        wait_until(shown, timeout=20, what="the backend health grid to show the failure")
        screenshot(page, "backend-health-wrong-root")
    finally:
        secure.stop()
