"""Portal screens Health probes, Backend health and the Create wizard, driven over HTTP the way a
browser posts them (signed in, CSRF token scraped from the page), checked through the REST API."""

from __future__ import annotations

import base64
import html
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trustme

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import self_signed_leaf
from helpers import (
    API_VERSION,
    RG,
    SUB,
    TOKEN,
    Api,
    Pfx,
    ServeProcess,
    gateway_url,
    start_serve,
)
from portal_forms import is_checked

PORTAL = f"/portal/gateways/{SUB}/{RG}"
TLS_NAME = "backend.contoso.test"


# --- a signed-in browser --------------------------------------------------------------------------


@contextmanager
def portal_client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60, follow_redirects=False) as client:
        signed = client.post("/portal/signin", data={"token": TOKEN, "next": "/portal/resources"})
        assert signed.status_code == 303, signed.text
        yield client


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match[1]


def csrf(client: httpx.Client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def field_error(page: str, name: str) -> str:
    """The text of the error list the page shows under the field `name` ('' if none)."""
    match = re.search(
        rf'<ul class="field-error" id="{re.escape(name)}-error"[^>]*>(.*?)</ul>', page, re.S
    )
    return html.unescape(re.sub(r"<[^>]+>", " ", match[1])) if match else ""


def rest(api: httpx.Client, name: str, sub: str = SUB, rg: str = RG) -> httpx.Response:
    return api.get(gateway_url(name, rg, sub))


# --- the Create wizard ---------------------------------------------------------------------------


def wizard_form(token: str, **overrides: str) -> dict[str, str]:
    form = {
        "csrf": token,
        "subscription": SUB,
        "resource_group": RG,
        "gateway_name": "wizgw",
        "region": "westeurope",
        "tier": "Standard_v2",
        "capacity": "2",
        "frontend_type": "Private",
        "private_ip": "127.0.0.1",
        "pool_name": "appGatewayBackendPool",
        "pool_empty": "no",
        "target_0": "127.0.0.1",
        "target_1": "app1.contoso.test",
        "target_2": "",
        "rule_name": "rule1",
        "priority": "100",
        "listener_name": "appGatewayHttpListener",
        "listener_protocol": "Https",
        "listener_port_https": str(free_port()),
        "cert_name": "",
        "cert_password": "",
        "listener_type": "MultiSite",
        "host_name": "www.contoso.com",
        "settings_name": "appGatewayBackendHttpSettings",
        "settings_protocol": "Https",
        "settings_port_https": "443",
        "well_known": "no",
        "backend_cer_name": "backendRoot",
    }
    form.update(overrides)
    return form


def files(pfx: bytes | None, cer: bytes | None) -> dict[str, tuple[str, bytes, str]]:
    sent: dict[str, tuple[str, bytes, str]] = {}
    if pfx is not None:
        sent["cert_file"] = ("listener.pfx", pfx, "application/x-pkcs12")
    if cer is not None:
        sent["backend_cer"] = ("root.cer", cer, "application/pkix-cert")
    return sent


def create(
    browser: httpx.Client, pfx: bytes | None, cer: bytes | None, **changes: str
) -> httpx.Response:
    """Post the Create wizard's form (CSRF token from its page) with `changes` and the files."""
    form = wizard_form(csrf(browser, "/portal/create"), **changes)
    return browser.post("/portal/create", data=form, files=files(pfx, cer))


def test_wizard_creates_a_gateway_with_uploaded_pfx_and_root(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    with portal_client(api.base_url) as browser:
        listing = browser.get("/portal/resources")
        assert 'href="/portal/create"' in listing.text
        page = browser.get("/portal/create")
        assert page.status_code == 200
        for label in (
            "Subscription",
            "Resource group",
            "Application gateway name",
            "HTTP2",
            "Frontend IP address type",
            "Add backend pool without targets",
            "PFX certificate file",
            "Use well known CA certificate",
            "Review + create",
        ):
            assert label in page.text
        # Every visible input has a label.
        for name in re.findall(r'<input id="([^"]+)"', page.text):
            assert f'<label for="{name}"' in page.text, name
        token = csrf_of(page.text)

        der_root = base64.b64decode(root_cer)
        assert is_checked(page.text, "http2", "Disabled"), "Azure's default"
        form = wizard_form(token, cert_password=pfx.password, http2="Enabled")
        created = browser.post(
            "/portal/create", data=form, files=files(base64.b64decode(pfx.b64), der_root)
        )
        assert created.status_code == 303, (
            field_error(created.text, "cert_password") or created.text
        )
        assert created.headers["location"] == f"{PORTAL}/wizgw/overview"
        overview = browser.get(created.headers["location"])
        assert "Created application gateway &#39;wizgw&#39;" in overview.text

        got = rest(api.client, "wizgw")
        assert got.status_code == 200, got.text
        view = got.json()
        props = view["properties"]
        assert view["location"] == "westeurope"
        assert props["sku"] == {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 2}
        assert props["enableHttp2"] is True
        assert [f["name"] for f in props["frontendIPConfigurations"]] == [
            "appGatewayPrivateFrontendIP"
        ]
        assert props["frontendIPConfigurations"][0]["properties"]["privateIPAddress"] == "127.0.0.1"
        assert props["frontendPorts"][0]["name"] == "appGatewayFrontendPort"
        assert props["frontendPorts"][0]["properties"]["port"] == int(form["listener_port_https"])
        cert = props["sslCertificates"][0]
        assert cert["name"] == "wizgwSslCert"  # the default name of spec §5.4
        assert cert["properties"]["publicCertData"]
        assert "password" not in cert["properties"] and "data" not in cert["properties"]
        listener = props["httpListeners"][0]
        assert listener["name"] == "appGatewayHttpListener"
        assert listener["properties"]["protocol"] == "Https"
        assert listener["properties"]["hostName"] == "www.contoso.com"
        assert listener["properties"]["sslCertificate"]["id"].endswith(
            "/sslCertificates/wizgwSslCert"
        )
        pool = props["backendAddressPools"][0]
        assert pool["name"] == "appGatewayBackendPool"
        assert pool["properties"]["backendAddresses"] == [
            {"ipAddress": "127.0.0.1"},
            {"fqdn": "app1.contoso.test"},
        ]
        settings = props["backendHttpSettingsCollection"][0]
        assert settings["name"] == "appGatewayBackendHttpSettings"
        assert settings["properties"]["protocol"] == "Https"
        assert settings["properties"]["trustedRootCertificates"][0]["id"].endswith(
            "/trustedRootCertificates/backendRoot"
        )
        assert props["trustedRootCertificates"][0]["properties"]["data"]
        rule = props["requestRoutingRules"][0]
        assert rule["name"] == "rule1" and rule["properties"]["priority"] == 100

        # The same name again: If-None-Match "*" keeps the existing gateway.
        again = create(browser, base64.b64decode(pfx.b64), der_root, cert_password=pfx.password)
        assert again.status_code == 412
        assert "already exists" in field_error(again.text, "gateway_name")
        assert rest(api.client, "wizgw").json()["etag"] == view["etag"]

        # Without the CSRF token nothing happens.
        forged = browser.post("/portal/create", data=wizard_form("forged", gateway_name="other"))
        assert forged.status_code == 403
        assert rest(api.client, "other").status_code == 404


def current_step(page: str) -> str:
    match = re.search(r'<button [^>]*aria-current="step"[^>]*value="([a-z]+)"', page)
    if match is None:
        match = re.search(r'<button [^>]*value="([a-z]+)"[^>]*aria-current="step"', page)
    assert match, "no current step"
    return match[1]


def test_wizard_steps_check_the_tabs_they_leave_and_review_writes_nothing(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    """Azure's tabs: Next checks the tabs before the one it goes to (and stops at the first
    with a problem), Previous checks nothing, Review + create runs every check of the create
    (the PFX's password too) without writing, and Create uses the files chosen on an earlier
    step."""
    with portal_client(api.base_url) as browser:
        token = csrf(browser, "/portal/create")

        def post(step: str, go: str, files_: Any = None, **changes: str) -> httpx.Response:
            form = wizard_form(token, step=step, go=go, **changes)
            return browser.post("/portal/create", data=form, files=files_)

        unnamed = post("basics", "frontends", gateway_name="")
        assert unnamed.status_code == 400 and current_step(unnamed.text) == "basics"
        assert "Enter a name" in field_error(unnamed.text, "gateway_name")
        # Only the tabs left behind are checked: the missing PFX is for later.
        on = post("basics", "configuration", private_ip="nowhere")
        assert on.status_code == 400 and current_step(on.text) == "frontends"
        assert "not an IPv4 or IPv6 address" in field_error(on.text, "private_ip")
        assert not field_error(on.text, "cert_file")
        back = post("configuration", "backends", private_ip="nowhere", capacity="many")
        assert back.status_code == 200 and current_step(back.text) == "backends"
        assert "field-error" not in back.text
        ahead = post("basics", "configuration")
        assert ahead.status_code == 200 and current_step(ahead.text) == "configuration"

        # Tags: a row per tag, ARM's rules per row.
        bad_tags = {
            "tag_name_0": "env",
            "tag_value_0": "test",
            "tag_name_1": "ENV",
            "tag_value_1": "again",
            "tag_name_2": "a/b",
            "tag_value_2": "",
            "tag_name_3": "",
            "tag_value_3": "orphan",
        }
        tags = post("tags", "review", **bad_tags)
        assert tags.status_code == 400 and current_step(tags.text) == "configuration"
        assert "Choose the PFX" in field_error(tags.text, "cert_file")

        pem = base64.b64decode(pfx.b64)
        files_ = files(pem, base64.b64decode(root_cer))
        checked = post("configuration", "review", files_, cert_password="not-the-password")
        assert checked.status_code == 400 and current_step(checked.text) == "configuration"
        assert "password" in field_error(checked.text, "cert_password")
        assert "listener.pfx" in checked.text and "root.cer" in checked.text  # kept
        tagged = post("tags", "review", cert_password=pfx.password, **bad_tags)
        assert tagged.status_code == 400 and current_step(tagged.text) == "tags"
        assert "already on row 1" in field_error(tagged.text, "tag_name_1")
        assert "reserved character" in field_error(tagged.text, "tag_name_2")
        assert "Enter a name" in field_error(tagged.text, "tag_name_3")

        review = post("tags", "review", tag_name_0="env", tag_value_0="test")
        assert review.status_code == 200, re.findall(r"<li>([^<]*?)</li>", review.text)
        assert current_step(review.text) == "review"
        assert "Validation passed" in review.text
        for shown in ("wizgw", "westeurope", "Standard_v2", "app1.contoso.test", "backendRoot"):
            assert shown in review.text
        assert "<dt>HTTP2</dt><dd>Disabled</dd>" in review.text
        assert rest(api.client, "wizgw").status_code == 404  # Review wrote nothing
        # Create posts no file: the ones chosen on Configuration are kept for the session.
        created = post("review", "create", tag_name_0="env", tag_value_0="test")
        assert created.status_code == 303, field_error(created.text, "cert_file") or created.text
        view = rest(api.client, "wizgw").json()
        assert view["tags"] == {"env": "test"}
        assert view["properties"]["sslCertificates"][0]["properties"]["publicCertData"]
        # Review's refusals (the wrong password) were checks, not failed writes: the activity
        # log has the create alone.
        log = browser.get(f"{PORTAL}/wizgw/activity").text
        assert log.count('class="status-Healthy">Succeeded') == 1
        assert "Failed" not in log.split("</thead>", 1)[1]

        # Basics says a taken name before anything else is filled.
        token = csrf(browser, "/portal/create")
        taken = post("basics", "frontends")
        assert taken.status_code == 400 and current_step(taken.text) == "basics"
        assert "already exists" in field_error(taken.text, "gateway_name")


def test_wizard_wrong_pfx_password_is_shown_on_the_password_field(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    with portal_client(api.base_url) as browser:
        answer = create(
            browser,
            base64.b64decode(pfx.b64),
            base64.b64decode(root_cer),
            gateway_name="badpassword",
            cert_password="not-the-password",
            cert_name="mycert",
        )
        assert answer.status_code == 400
        assert field_error(answer.text, "cert_password"), answer.text
        assert not field_error(answer.text, "backend_cer")
        # The other values are kept; the password is not echoed back.
        assert 'value="badpassword"' in answer.text
        assert 'value="mycert"' in answer.text
        assert 'value="app1.contoso.test"' in answer.text
        assert "not-the-password" not in answer.text
        assert rest(api.client, "badpassword").status_code == 404


def test_wizard_garbage_cer_is_shown_on_the_cer_field(api: Api, pfx: Pfx) -> None:
    with portal_client(api.base_url) as browser:
        answer = create(
            browser,
            base64.b64decode(pfx.b64),
            b"this is not a certificate",
            gateway_name="badcer",
            cert_password=pfx.password,
        )
        assert answer.status_code == 400
        assert field_error(answer.text, "backend_cer"), answer.text
        assert not field_error(answer.text, "cert_password")
        assert rest(api.client, "badcer").status_code == 404

        # Posted again without files: the kept ones are used (the CER still is not one).
        again = browser.post("/portal/create", data=wizard_form(csrf_of(answer.text)))
        assert again.status_code == 400
        assert field_error(again.text, "backend_cer") and not field_error(again.text, "cert_file")
        # The form opened afresh forgets them: a form missing the files says so before asking
        # the service.
        empty = browser.post("/portal/create", data=wizard_form(csrf(browser, "/portal/create")))
        assert empty.status_code == 400
        assert field_error(empty.text, "cert_file")
        assert field_error(empty.text, "backend_cer")


def test_wizard_v1_http_gateway_without_targets(api: Api) -> None:
    """The wizard's gateway is what `appgw create` builds: az's public IP name and connection
    draining, no priority on v1 (the form's default one is not used), and the portal's own
    request time-out of 20 s."""
    with portal_client(api.base_url) as browser:
        answer = create(
            browser,
            None,
            None,
            gateway_name="v1gw",
            tier="Standard",
            capacity="1",
            frontend_type="Public",
            pool_empty="yes",
            listener_protocol="Http",
            listener_port_http=str(free_port()),
            listener_type="Basic",
            settings_protocol="Http",
            settings_port_http="8080",
        )
        assert answer.status_code == 303, answer.text
        props = rest(api.client, "v1gw").json()["properties"]
        assert props["sku"]["name"] == "Standard_Medium" and props["sku"]["tier"] == "Standard"
        frontend = props["frontendIPConfigurations"][0]
        assert frontend["name"] == "appGatewayFrontendIP"
        assert frontend["properties"]["publicIPAddress"]["id"].endswith(
            "/publicIPAddresses/v1gwPublicIp"
        )
        assert props["backendAddressPools"][0]["properties"].get("backendAddresses", []) == []
        settings = props["backendHttpSettingsCollection"][0]["properties"]
        assert settings["port"] == 8080 and settings["requestTimeout"] == 20
        assert settings["connectionDraining"] == {"enabled": False, "drainTimeoutInSec": 1}
        assert "priority" not in props["requestRoutingRules"][0]["properties"]
        assert props["enableHttp2"] is False, "the wizard's HTTP2 choice, Disabled by default"


def test_wizard_v1_ignores_v2_fields_and_takes_its_size(api: Api) -> None:
    """A browser without JavaScript submits every field: for Standard (v1) the server ignores
    priority and the well-known CA choice (v1 has neither) and needs the backend's .cer."""
    with portal_client(api.base_url) as browser:
        v1 = {
            "gateway_name": "v1sized",
            "tier": "Standard",
            "size": "Large",
            "priority": "not a number",
            "pool_empty": "yes",
            "listener_protocol": "Http",
            "listener_port_http": str(free_port()),
            "settings_protocol": "Https",
            "settings_port_https": "8443",
            "well_known": "yes",
        }
        refused = create(browser, None, None, **v1)
        assert refused.status_code == 400
        assert "Standard (v1)" in field_error(refused.text, "backend_cer")
        assert field_error(refused.text, "priority") == ""
        assert "SKU size" in refused.text
        _, _, leaf_der = self_signed_leaf("backend.contoso.test")
        answer = create(browser, None, leaf_der, backend_cer_name="backendLeaf", **v1)
        assert answer.status_code == 303, answer.text
        props = rest(api.client, "v1sized").json()["properties"]
        assert props["sku"]["name"] == "Standard_Large" and props["sku"]["tier"] == "Standard"
        assert "priority" not in props["requestRoutingRules"][0]["properties"]
        assert [c["name"] for c in props["authenticationCertificates"]] == ["backendLeaf"]
        settings = props["backendHttpSettingsCollection"][0]["properties"]
        assert settings["authenticationCertificates"][0]["id"].endswith("/backendLeaf")
        # WAF (v1) has no Small size; Medium makes WAF_Medium.
        waf = {**v1, "gateway_name": "v1waf", "tier": "WAF", "size": "Small"}
        waf["listener_port_http"] = str(free_port())
        small = create(browser, None, leaf_der, backend_cer_name="backendLeaf", **waf)
        assert small.status_code == 400 and "Medium" in field_error(small.text, "size")
        waf["size"] = "Medium"
        answer = create(browser, None, leaf_der, backend_cer_name="backendLeaf", **waf)
        assert answer.status_code == 303, answer.text
        props = rest(api.client, "v1waf").json()["properties"]
        assert props["sku"]["name"] == "WAF_Medium" and props["sku"]["tier"] == "WAF"
        # A WAF tier starts with the inline WAF on, detecting only (CRS 3.0 on v1).
        waf_config = props["webApplicationFirewallConfiguration"]
        assert waf_config["firewallMode"] == "Detection" and waf_config["ruleSetVersion"] == "3.0"


def test_health_screen_without_a_monitor_says_so(api: Api) -> None:
    builder = GatewayBuilder("nomonitor")
    builder.pool("pool", "127.0.0.1").settings("settings", 80)
    builder.listener("listener", free_port()).rule(
        "rule", "listener", pool="pool", settings="settings"
    )
    assert api.client.put(gateway_url("nomonitor"), json=builder.build()).status_code == 201
    with portal_client(api.base_url) as browser:
        page = browser.get(f"{PORTAL}/nomonitor/health")
        assert page.status_code == 200
        assert "runs no health monitor" in page.text
        probes = browser.get(f"{PORTAL}/nomonitor/probes")
        assert probes.status_code == 200 and "No health probes" in probes.text


# --- probes and backend health against `appgw serve` and real backends --------------------------


class _PathHandler(BaseHTTPRequestHandler):
    """200 on every path but /missing, which is 404."""

    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = b"ok" if status == 200 else b"not here"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def path_backend() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PathHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, backend_ca: trustme.CA
) -> Iterator[tuple[ServeProcess, dict[str, int]]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    backend_ca.issue_cert(TLS_NAME).configure_cert(context)
    tls = Backend("tls", context=context).start()
    data_dir = tmp_path_factory.mktemp("portal-b") / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN})
    try:
        with path_backend() as http_port:
            yield server, {"http": http_port, "tls": tls.port}
    finally:
        server.stop()
        tls.stop()


def rest_client(server: ServeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def health_report(api: httpx.Client, name: str) -> dict[str, Any]:
    answer = api.post(
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
        f"applicationGateways/{name}/backendhealth?api-version={API_VERSION}"
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def states(report: dict[str, Any]) -> list[str]:
    return [
        server["health"]
        for pool in report["backendAddressPools"]
        for group in pool["backendHttpSettingsCollection"]
        for server in group["servers"]
    ]


@pytest.mark.slow
def test_probe_test_then_add_and_backend_health(
    served: tuple[ServeProcess, dict[str, int]], root_cer: str
) -> None:
    server, ports = served
    builder = GatewayBuilder("probed")
    builder.pool("webPool", "127.0.0.1").settings("webSettings", ports["http"])
    builder.listener("web", free_port()).rule(
        "webRule", "web", pool="webPool", settings="webSettings"
    )
    builder.trusted_root("backendRoot", root_cer)
    builder.pool("tlsPool", "127.0.0.1").settings(
        "tlsSettings",
        ports["tls"],
        "Https",
        hostName=TLS_NAME,
        trustedRootCertificates=["backendRoot"],
    )
    builder.listener("tlsweb", free_port()).rule(
        "tlsRule", "tlsweb", pool="tlsPool", settings="tlsSettings"
    )
    with rest_client(server) as api, portal_client(server.base_url) as browser:
        put = api.put(gateway_url("probed"), json=builder.build())
        assert put.status_code == 201, put.text
        etag = put.json()["etag"]

        # --- Backend health: Status and Details of real backends -----------------------------
        wait_until(
            lambda: states(health_report(api, "probed")) == ["Healthy", "Healthy"],
            timeout=15,
            what="both backends healthy",
        )
        page = browser.get(f"{PORTAL}/probed/health")
        assert page.status_code == 200
        assert page.text.count("status-Healthy") == 2
        assert "Success. Received 200 status code" in page.text
        for header in (
            "Server",
            "Backend pool",
            "Backend setting",
            "Port",
            "Protocol",
            "Status",
            "Details",
        ):
            assert f'<th scope="col">{header}</th>' in page.text
        assert "webPool" in page.text and "tlsSettings" in page.text
        # The TLS row expands to the chain the backend presented and the SNI it was sent.
        assert "<details" in page.text
        assert "SHA-256 fingerprint" in page.text
        assert TLS_NAME in page.text
        assert "Backend Root" in page.text  # the issuer (trustme's CA organisation)

        # --- Add a probe with Test: results, nothing saved -----------------------------------
        add_url = f"{PORTAL}/probed/probes/add"
        form_page = browser.get(add_url)
        for label in (
            "Pick host name from backend settings",
            "Interval (secs)",
            "Unhealthy threshold",
            "I want to test the backend health",
        ):
            assert label in form_page.text
        assert '<option value="webSettings"' in form_page.text
        token = csrf_of(form_page.text)
        form = {
            "csrf": token,
            "etag": etag,
            "name": "webProbe",
            "protocol": "Http",
            "pick_host": "no",
            "host": "probe.contoso.test",
            "pick_port": "yes",
            "path": "/health",
            "interval": "30",
            "timeout": "5",
            "threshold": "3",
            "use_match": "yes",
            "status_codes": "200-399",
            "body": "",
            "settings": "webSettings",
            "test": "1",
            "action": "test",
        }
        tested = browser.post(add_url, data=form)
        assert tested.status_code == 200, tested.text
        assert "Go back to probe" in tested.text
        assert "status-Healthy" in tested.text
        assert "Success. Received 200 status code" in tested.text

        failing = browser.post(add_url, data={**form, "path": "/missing"})
        assert failing.status_code == 200, failing.text
        assert "status-Unhealthy" in failing.text
        assert "did not match" in failing.text and "Received:404" in failing.text
        assert api.get(gateway_url("probed")).json()["properties"].get("probes", []) == []

        # "Go back to probe" returns the form with what was entered.
        back = browser.post(add_url, data={**form, "path": "/missing", "action": "back"})
        assert back.status_code == 200
        assert 'value="/missing"' in back.text and 'value="probe.contoso.test"' in back.text

        # "Add" from the results saves the probe and attaches it to the settings.
        added = browser.post(add_url, data={**form, "action": "add"})
        assert added.status_code == 303, added.text
        view = api.get(gateway_url("probed")).json()
        probe = view["properties"]["probes"][0]
        assert probe["name"] == "webProbe"
        assert probe["properties"]["path"] == "/health"
        assert probe["properties"]["host"] == "probe.contoso.test"
        assert probe["properties"]["timeout"] == 5
        settings = {s["name"]: s for s in view["properties"]["backendHttpSettingsCollection"]}
        assert settings["webSettings"]["properties"]["probe"]["id"].endswith("/probes/webProbe")
        assert "probe" not in settings["tlsSettings"]["properties"]
        listing = browser.get(f"{PORTAL}/probed/probes")
        assert "webProbe" in listing.text and "webSettings" in listing.text

        # A service refusal lands on its field: a path must start with '/'.
        edit_url = f"{PORTAL}/probed/probes/webProbe/edit"
        edit_page = browser.get(edit_url)
        assert 'value="probe.contoso.test"' in edit_page.text
        bad = browser.post(
            edit_url,
            data={
                **form,
                "csrf": csrf_of(edit_page.text),
                "etag": view["etag"],
                "path": "health",
                "test": "",
                "action": "save",
            },
        )
        assert bad.status_code == 400
        assert "must start with" in field_error(bad.text, "path")
        # A form built from an older version saves nothing, and then builds on the current one.
        stale = browser.post(
            edit_url, data={**form, "etag": etag, "timeout": "7", "test": "", "action": "save"}
        )
        assert stale.status_code == 412 and "was changed" in stale.text
        shown = re.search(r'name="etag" value="([^"]*)"', stale.text)
        assert shown and html.unescape(shown[1]) == view["etag"]
        assert api.get(gateway_url("probed")).json()["etag"] == view["etag"]

        # A probe in use cannot be deleted; detached, it can.
        refused = browser.post(
            f"{PORTAL}/probed/probes/webProbe/delete",
            data={"csrf": token, "etag": view["etag"]},
        )
        assert refused.status_code == 400 and "webSettings" in refused.text
        detached = browser.post(
            edit_url,
            data={
                **form,
                "csrf": token,
                "etag": view["etag"],
                "settings": "",
                "attached_before": "webSettings",
                "test": "",
                "action": "save",
            },
        )
        assert detached.status_code == 303, detached.text
        view = api.get(gateway_url("probed")).json()
        assert "probe" not in view["properties"]["backendHttpSettingsCollection"][0]["properties"]
        confirm = browser.get(f"{PORTAL}/probed/probes/webProbe/delete")
        assert confirm.status_code == 200
        deleted = browser.post(
            f"{PORTAL}/probed/probes/webProbe/delete",
            data={"csrf": csrf_of(confirm.text), "etag": view["etag"]},
        )
        assert deleted.status_code == 303, deleted.text
        assert api.get(gateway_url("probed")).json()["properties"].get("probes", []) == []


@pytest.mark.slow
def test_probe_test_needs_settings_a_rule_uses(
    served: tuple[ServeProcess, dict[str, int]],
) -> None:
    server, ports = served
    builder = GatewayBuilder("unused")
    builder.pool("pool", "127.0.0.1").settings("used", ports["http"]).settings(
        "spare", ports["http"]
    )
    builder.listener("web", free_port()).rule("rule", "web", pool="pool", settings="used")
    with rest_client(server) as api, portal_client(server.base_url) as browser:
        assert api.put(gateway_url("unused"), json=builder.build()).status_code == 201
        add_url = f"{PORTAL}/unused/probes/add"
        token = csrf(browser, add_url)
        form = {
            "csrf": token,
            "name": "p",
            "protocol": "Http",
            "pick_host": "yes",
            "path": "/",
            "interval": "30",
            "timeout": "5",
            "threshold": "3",
            "use_match": "no",
            "settings": "spare",
            "test": "1",
            "action": "save",  # with the box ticked, Enter in a field means Test
        }
        answer = browser.post(add_url, data=form)
        assert answer.status_code == 400
        assert "No rule sends traffic" in field_error(answer.text, "settings")
        wrong_protocol = browser.post(
            add_url, data={**form, "settings": "used", "protocol": "Https"}
        )
        assert wrong_protocol.status_code == 400
        assert "Http" in field_error(wrong_protocol.text, "protocol"), re.findall(
            r"role=\"alert\">(.*?)</", wrong_protocol.text, re.S
        )
        assert api.get(gateway_url("unused")).json()["properties"].get("probes", []) == []


def test_pages_need_a_session(api: Api) -> None:
    with httpx.Client(base_url=api.base_url, follow_redirects=False) as anonymous:
        for url in ("/portal/create", f"{PORTAL}/x/probes", f"{PORTAL}/x/health"):
            answer = anonymous.get(url)
            assert answer.status_code == 303 and "/portal/signin" in answer.headers["location"]
