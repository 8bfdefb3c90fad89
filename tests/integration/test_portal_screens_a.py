"""Portal screens Listeners, Backend settings, Backend pools, Rules, Configuration, SSL settings
and Activity log, driven over HTTP the way a browser without JavaScript posts them (the page's
own form, CSRF token and all), every outcome checked through the REST API."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from helpers import (
    RG,
    SUB,
    Api,
    Pfx,
    gateway_id,
    gateway_url,
    make_pfx,
    skeleton,
)
from portal_forms import (
    Browser,
    error_only_at,
    field_error,
    general_error,
    is_checked,
    signed_in_portal,
    stored,
)

PORTAL = f"/portal/gateways/{SUB}/{RG}"
G = gateway_id()


# --- a signed-in browser -------------------------------------------------------------------------


def screen(name: str, gateway: str = "appgw") -> str:
    return f"{PORTAL}/{gateway}/{name}"


# --- fixtures ------------------------------------------------------------------------------------


def two_listener_gateway(pfx: Pfx, root_cer: str) -> dict[str, Any]:
    """The §1.6 skeleton plus a free HTTP listener on port 80 for new rules to use."""
    document = skeleton(pfx, root_cer)
    props = document["properties"]
    props["frontendPorts"].append({"name": "port80", "properties": {"port": 80}})
    props["httpListeners"].append(
        {
            "name": "httpListener",
            "properties": {
                "frontendIPConfiguration": {
                    "id": f"{G}/frontendIPConfigurations/appGatewayFrontendIP"
                },
                "frontendPort": {"id": f"{G}/frontendPorts/port80"},
                "protocol": "Http",
            },
        }
    )
    return document


def v1_gateway(pfx: Pfx, root_cer: str) -> dict[str, Any]:
    """The skeleton on a v1 SKU: no trusted roots, no priorities, a v1-era TLS policy."""
    document = skeleton(pfx, root_cer, name="appgw1", port=8443)
    props = document["properties"]
    props["sku"] = {"name": "Standard_Medium", "tier": "Standard", "capacity": 2}
    props["sslPolicy"] = {"policyType": "Predefined", "policyName": "AppGwSslPolicy20170401S"}
    props["trustedRootCertificates"] = []
    props["backendHttpSettingsCollection"][0]["properties"].pop("trustedRootCertificates")
    props["requestRoutingRules"][0]["properties"].pop("priority")
    return document


@pytest.fixture
def portal(tmp_path: Path, pfx: Pfx, root_cer: str) -> Iterator[tuple[Api, Browser]]:
    with signed_in_portal(tmp_path / "data", two_listener_gateway(pfx, root_cer)) as signed_in:
        yield signed_in


def child(document: dict[str, Any], collection: str, name: str) -> dict[str, Any] | None:
    for entry in document["properties"].get(collection, []):
        if entry["name"].casefold() == name.casefold():
            return entry  # type: ignore[no-any-return]
    return None


def properties(document: dict[str, Any], collection: str, name: str) -> dict[str, Any]:
    """The properties of a child the stored gateway must have."""
    found = child(document, collection, name)
    assert found is not None, f"no {collection} entry '{name}'"
    return found["properties"]  # type: ignore[no-any-return]


def without_etags(value: Any) -> Any:
    """Every child carries its gateway's etag, which any save changes."""
    if isinstance(value, dict):
        return {key: without_etags(item) for key, item in value.items() if key != "etag"}
    if isinstance(value, list):
        return [without_etags(item) for item in value]
    return value


def assert_refused_without_csrf(browser: Browser, page: str, action: str, api: Api) -> None:
    before = stored(api)["etag"]
    refused = browser.submit(page, action, csrf="")
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    assert stored(api)["etag"] == before, "a form without the CSRF token changed the gateway"


def accepted(
    browser: Browser, page: str, action: str, **changes: str | list[str]
) -> httpx.Response:
    """Post the form of `page` with `changes`: saved, and the browser is sent on (303)."""
    answer = browser.submit(page, action, **changes)
    assert answer.status_code == 303, answer.text
    return answer


def refused(
    browser: Browser, page: str, action: str, at: str, words: str, **changes: str | list[str]
) -> str:
    """Post the form of `page` with `changes`: refused (400) with `words` under the field `at`
    and nothing left for the top of the form. Returns the form shown again."""
    answer = browser.submit(page, action, **changes)
    assert answer.status_code == 400, answer.text
    error_only_at(answer.text, at, words)
    return answer.text


# (fields changed, the field the error shows under, words of the error)
Refusal = tuple[dict[str, str | list[str]], str, str]


def assert_refusals(api: Api, browser: Browser, form: str, refusals: list[Refusal]) -> list[str]:
    """Each change to the form `form` is refused next to its field, and none of them, nor the form
    without its CSRF token, changes the gateway. Returns the forms shown again."""
    before = stored(api)["etag"]
    page = browser.get(screen(form))
    shown = [
        refused(browser, page, screen(form), at, words, **changes)
        for changes, at, words in refusals
    ]
    assert stored(api)["etag"] == before
    assert_refused_without_csrf(browser, page, screen(form), api)
    return shown


# --- every screen --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("pools", ["Backend pools", "appGatewayBackendPool", "rule1", "+ Add"]),
        (
            "pools/add",
            [
                "Add backend pool",
                "Add backend pool without targets",
                "Target type",
                "IP address or FQDN",
                "Target",
            ],
        ),
        ("pools/appGatewayBackendPool/edit", ["Edit backend pool", "10.0.1.4", "app1.contoso.com"]),
        ("rules", ["Rules", "Priority", "Listener", "rule1", "appGatewayHttpListener", "Basic"]),
        (
            "rules/add",
            [
                "Rule name",
                "Priority",
                "Listener",
                "Backend targets",
                "Target type",
                "Backend pool",
                "Redirection",
                "Redirection type",
                "Permanent",
                "Redirection target",
                "External site",
                "Target listener",
                "Target URL",
                "Include path",
                "Include query string",
                "Add multiple targets to create a path-based rule",
                "Path",
                "Target name",
                "Backend settings",
                "Backend target",
            ],
        ),
        ("rules/rule1/edit", ["Edit routing rule", "appGatewayBackendPool"]),
        (
            "configuration",
            [
                "Configuration",
                "Tier",
                "Standard_v2",
                "Capacity type",
                "Autoscale",
                "Manual",
                "Instance count",
                "HTTP2",
            ],
        ),
        (
            "ssl",
            [
                "SSL settings",
                "Predefined",
                "Custom",
                "CustomV2",
                "AppGwSslPolicy20220101S",
                "AppGwSslPolicy20150501",
                "Retired",
                "Min protocol version",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ],
        ),
        (
            "activity",
            [
                "Activity log",
                "Create or Update Application Gateway",
                "Succeeded",
                "Event initiated by",
            ],
        ),
    ],
)
def test_each_screen_shows_azure_words(
    portal: tuple[Api, Browser], path: str, words: list[str]
) -> None:
    _api, browser = portal
    page = browser.get(screen(path))
    for word in words:
        assert word in page, f"{path}: '{word}' missing"
    # Every visible control has a label (the page is usable with a screen reader and keyboard).
    for control in re.findall(r'<(?:input|select)\b[^>]*\bid="([^"]+)"', page):
        assert f'for="{control}"' in page, f"{path}: control '{control}' has no label"
    if "<form" in page and 'method="post"' in page:
        assert 'name="csrf"' in page


def test_screens_need_a_session(portal: tuple[Api, Browser]) -> None:
    api, _browser = portal
    for path in ("pools", "rules", "configuration", "ssl", "activity"):
        anonymous = httpx.get(f"{api.base_url}{screen(path)}", follow_redirects=False)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/portal/signin")


def test_unknown_pool_or_rule_is_a_404(portal: tuple[Api, Browser]) -> None:
    _api, browser = portal
    assert browser.client.get(screen("pools/nope/edit")).status_code == 404
    assert browser.client.get(screen("rules/nope/edit")).status_code == 404


def test_unknown_portal_urls_get_the_portal_not_found_page(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    paths = (
        "/portal/nowhere",
        screen("nowhere"),  # an unknown blade
        screen("pools/appGatewayBackendPool/nowhere"),
        screen("pools/edit/appGatewayBackendPool"),  # the child URLs before they shared one shape
    )
    with httpx.Client(base_url=api.base_url, follow_redirects=False) as anonymous:
        for client in (browser.client, anonymous):
            for path in paths:
                answer = client.get(path)
                assert answer.status_code == 404, path
                assert answer.headers["content-type"].startswith("text/html"), path
                assert "<h1>Not found</h1>" in answer.text, path
                assert 'href="/portal/resources"' in answer.text, "a way back"
    assert "Sign out" in browser.client.get("/portal/nowhere").text, "the portal's top bar"
    assert browser.client.get("/portal").headers["location"] == "/portal/resources"
    wrong_method = browser.client.post("/portal/resources", data={})
    assert wrong_method.status_code == 405
    assert "<h1>Not allowed</h1>" in wrong_method.text
    # API paths keep their JSON errors.
    api_path = api.client.get(f"/subscriptions/{SUB}/nowhere?api-version=2024-05-01")
    assert api_path.status_code == 404
    assert api_path.headers["content-type"] == "application/json"


def test_pages_link_a_favicon_that_is_served(portal: tuple[Api, Browser]) -> None:
    _api, browser = portal
    icon = re.search(
        r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', browser.get("/portal/resources")
    )
    assert icon is not None, "no favicon linked"
    served = browser.client.get(icon[1])
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("image/svg+xml")
    assert served.text.startswith("<svg")


# --- listeners and backend settings ------------------------------------------------------------


def test_add_edit_and_delete_a_listener(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    listed = browser.get(screen("listeners"))
    assert f'href="{screen("listeners/add")}"' in listed
    assert f'href="{screen("listeners/httpListener/edit")}"' in listed
    page = browser.get(screen("listeners/add"))
    accepted(browser, page, screen("listeners/add"), listener_name="extra", port="8081")
    assert "Listener &#39;extra&#39; added." in browser.get(screen("listeners"))
    assert properties(stored(api), "httpListeners", "extra")["protocol"] == "Http"
    # Adding never replaces a listener of that name.
    refused(
        browser,
        page,
        screen("listeners/add"),
        "listener_name",
        "two entries are named",
        listener_name="EXTRA",
        port="8083",
    )

    edit = browser.get(screen("listeners/extra/edit"))
    assert re.search(r'name="listener_name"[^>]*readonly', edit), "no renaming"
    accepted(browser, edit, screen("listeners/extra/edit"), port="8082")
    listener = properties(stored(api), "httpListeners", "extra")
    assert listener["frontendPort"]["id"].endswith("/frontendPorts/port_8082")

    listed = browser.get(screen("listeners"))
    used = browser.submit(listed, screen("listeners/appGatewayHttpListener/delete"))
    assert used.status_code == 400
    assert "Rules using it: rule1" in general_error(used.text)
    confirm = browser.get(screen("listeners/extra/delete"))
    assert "Delete listener extra?" in confirm
    accepted(browser, confirm, screen("listeners/extra/delete"))
    assert child(stored(api), "httpListeners", "extra") is None


def test_a_refused_listener_keeps_its_pfx_and_password_for_the_session(
    portal: tuple[Api, Browser], ca: trustme.CA
) -> None:
    """A failed submit does not make the operator choose the PFX again: it is kept (by name,
    with "choose another"), with its password when that was not the problem; another form and
    the form opened afresh start without it."""
    api, browser = portal
    pfx = make_pfx(ca, "www.contoso.com", password="Right-Passw0rd")
    data = base64.b64decode(pfx.b64)
    add = screen("listeners/add")

    def add_https(file_name: str, name: str, port: str, cert_name: str, password: str) -> Any:
        return browser.submit(
            browser.get(add),
            add,
            files={"cert_file": (file_name, data)},
            listener_name=name,
            port=port,
            protocol="Https",
            cert_choice="upload",
            cert_name=cert_name,
            cert_password=password,
        )

    wrong = add_https("contoso.pfx", "tls", "8445", "tlsCert", "wrong-password")
    assert wrong.status_code == 400
    assert "password" in field_error(wrong.text, "cert_password")
    assert "contoso.pfx" in wrong.text and "kept from your last submit" in wrong.text
    assert "Choose another file" in wrong.text
    assert "wrong-password" not in wrong.text and "Right-Passw0rd" not in wrong.text
    assert child(stored(api), "httpListeners", "tls") is None
    # The fix is the password alone: no file is posted.
    accepted(browser, wrong.text, add, cert_password=pfx.password)
    assert properties(stored(api), "httpListeners", "tls")["sslCertificate"]["id"].endswith(
        "/sslCertificates/tlsCert"
    )
    # Saved: the draft is gone, and so it is from a form opened afresh.
    assert "kept from your last submit" not in browser.get(add)
    refused_once = add_https("other.pfx", "tls2", "8446", "", pfx.password)
    assert refused_once.status_code == 400 and "other.pfx" in refused_once.text
    assert "The password entered with other.pfx is kept" in refused_once.text
    assert "other.pfx" not in browser.get(screen("settings/add"))
    assert "other.pfx" not in browser.get(add)


def test_a_port_another_gateway_uses_is_refused_on_the_port_field(
    portal: tuple[Api, Browser], pfx: Pfx, root_cer: str
) -> None:
    api, browser = portal
    other = api.client.put(gateway_url("other"), json=skeleton(pfx, root_cer, "other", 8443))
    assert other.status_code in (200, 201), other.text
    page = browser.get(screen("listeners/appGatewayHttpListener/edit"))
    shown = refused(
        browser,
        page,
        screen("listeners/appGatewayHttpListener/edit"),
        "port",
        "port 8443 on 0.0.0.0 (all addresses) is already used by listener 'appGatewayHttpListener' "
        "of gateway 'rg1/other'",
        port="8443",
    )
    assert "/subscriptions/" not in field_error(shown, "port"), "no resource ids"


def test_tls_certificates_table_shows_a_pfx_made_as_microsofts_cli_tutorial_makes_it(
    portal: tuple[Api, Browser], tmp_path: Path
) -> None:
    """`openssl req -x509` then `openssl pkcs12 -export` (the system's openssl): a self-signed
    certificate marked CA:TRUE, which is the listener's leaf all the same."""
    api, browser = portal
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command here")
    key, cert, pfx = tmp_path / "k.pem", tmp_path / "c.pem", tmp_path / "a.pfx"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-subj", "/CN=www.contoso.com", "-days", "365"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [openssl, "pkcs12", "-export", "-out", pfx, "-inkey", key, "-in", cert,
         "-passout", "pass:Tutorial-Passw0rd"],
        check=True, capture_output=True,
    )  # fmt: skip
    made = x509.load_pem_x509_certificate(cert.read_bytes())
    assert made.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    document = stored(api)
    certificate = properties(document, "sslCertificates", "appgwSslCert")
    certificate["data"] = base64.b64encode(pfx.read_bytes()).decode()
    certificate["password"] = "Tutorial-Passw0rd"
    assert api.client.put(gateway_url(), json=document).status_code == 200
    # The API's publicCertData holds that very certificate...
    data = properties(stored(api), "sslCertificates", "appgwSslCert")["publicCertData"]
    assert pkcs7.load_der_pkcs7_certificates(base64.b64decode(data)) == [made]
    # ...and the portal shows its subject and expiry.
    rows = re.findall(r"<tr>(.*?)</tr>", browser.get(screen("listeners")), re.S)
    row = next(html.unescape(r) for r in rows if '<td data-label="Name">appgwSslCert<' in r)
    assert '<td data-label="Subject">CN=www.contoso.com</td>' in row
    expiry = made.not_valid_after_utc.date().isoformat()
    assert f'<td data-label="Expiry date">{expiry}</td>' in row


def test_add_and_delete_backend_settings(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("settings/add"))
    accepted(browser, page, screen("settings/add"), settings_name="s2", port="8080")
    assert properties(stored(api), "backendHttpSettingsCollection", "s2")["port"] == 8080
    listed = browser.get(screen("settings"))
    assert f'href="{screen("settings/s2/edit")}"' in listed
    used = browser.submit(listed, screen("settings/appGatewayBackendHttpSettings/delete"))
    assert used.status_code == 400
    assert "Rules using it: rule1" in general_error(used.text)
    accepted(browser, listed, screen("settings/s2/delete"))
    assert child(stored(api), "backendHttpSettingsCollection", "s2") is None


def test_backend_settings_trust_several_roots(portal: tuple[Api, Browser], root_cer: str) -> None:
    """The ticked roots of the gateway and one uploaded besides, all trusted, in that order."""
    api, browser = portal
    edit = screen("settings/appGatewayBackendHttpSettings/edit")
    page = browser.get(edit)
    assert is_checked(page, "existing_cer", "backendRoot")
    accepted(
        browser,
        page,
        edit,
        files={"cer_file": ("second.cer", base64.b64decode(root_cer))},
        cer_name="secondRoot",
    )
    settings = properties(
        stored(api), "backendHttpSettingsCollection", "appGatewayBackendHttpSettings"
    )
    assert [r["id"].rsplit("/", 1)[1] for r in settings["trustedRootCertificates"]] == [
        "backendRoot",
        "secondRoot",
    ]
    page = browser.get(edit)
    assert is_checked(page, "existing_cer", "backendRoot") and is_checked(
        page, "existing_cer", "secondRoot"
    )
    # Untick one: the other is still trusted.
    accepted(browser, page, edit, existing_cer=["secondRoot"])
    settings = properties(
        stored(api), "backendHttpSettingsCollection", "appGatewayBackendHttpSettings"
    )
    assert [r["id"].rsplit("/", 1)[1] for r in settings["trustedRootCertificates"]] == [
        "secondRoot"
    ]
    refused(browser, page, edit, "existing_cer", "Tick a certificate", existing_cer=[])


def test_a_pfx_uploaded_as_the_trusted_root_is_named_a_pfx(
    portal: tuple[Api, Browser], pfx: Pfx
) -> None:
    api, browser = portal
    before = stored(api)["etag"]
    edit = screen("settings/appGatewayBackendHttpSettings/edit")
    answer = browser.submit(
        browser.get(edit),
        edit,
        files={"cer_file": ("listener.pfx", base64.b64decode(pfx.b64))},
        cer_choice="upload",
        cer_name="fromPfx",
    )
    assert answer.status_code == 400, answer.text
    error_only_at(
        answer.text, "cer_file", "this is a PFX (PKCS#12); upload the certificate only (.cer)"
    )
    assert stored(api)["etag"] == before


# --- backend pools -------------------------------------------------------------------------------


def test_add_edit_and_delete_a_backend_pool(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("pools/add"))
    assert len(re.findall(r'name="target_\d+"', page)) >= 5
    saved = accepted(
        browser,
        page,
        screen("pools/add"),
        pool_name="pool2",
        without_targets="No",
        target_0="10.0.2.5",
        target_1="",  # blank rows are ignored
        target_2="api.contoso.com",
    )
    assert saved.headers["location"] == screen("pools")
    listed = browser.get(screen("pools"))
    assert "Backend pool &#39;pool2&#39; added." in listed
    pool = properties(stored(api), "backendAddressPools", "pool2")
    assert pool["backendAddresses"] == [
        {"ipAddress": "10.0.2.5"},
        {"fqdn": "api.contoso.com"},
    ]

    edit = browser.get(screen("pools/pool2/edit"))
    assert 'value="api.contoso.com"' in edit
    accepted(browser, edit, screen("pools/pool2/edit"), target_0="10.0.2.6")
    pool = properties(stored(api), "backendAddressPools", "pool2")
    assert pool["backendAddresses"][0] == {"ipAddress": "10.0.2.6"}

    edit = browser.get(screen("pools/pool2/edit"))
    accepted(browser, edit, screen("pools/pool2/edit"), without_targets="Yes")
    assert properties(stored(api), "backendAddressPools", "pool2")["backendAddresses"] == []

    listed = browser.get(screen("pools"))
    accepted(browser, listed, screen("pools/pool2/delete"))
    assert child(stored(api), "backendAddressPools", "pool2") is None


def test_backend_pool_errors_show_next_to_their_field(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    typed = {"without_targets": "No", "target_0": "10.0.0.9"}
    duplicate, bad_target, _bad_name, _no_targets = assert_refusals(
        api,
        browser,
        "pools/add",
        [
            ({"pool_name": "APPGATEWAYBACKENDPOOL", **typed}, "pool_name", "two entries are named"),
            (
                {"pool_name": "pool3", **typed, "target_3": "bad_name!"},
                "target_3",
                "not a valid DNS name",
            ),
            ({"pool_name": "bad name", "without_targets": "Yes"}, "pool_name", "1-80 characters"),
            ({"pool_name": "pool4", "without_targets": "No"}, "target_0", "at least one target"),
        ],
    )
    assert 'value="10.0.0.9"' in duplicate, "what was typed is kept"
    assert field_error(bad_target, "target_0") == ""


def test_a_pool_a_rule_uses_is_not_deleted(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    before = stored(api)["etag"]
    listed = browser.get(screen("pools"))
    refused = browser.submit(listed, screen("pools/appGatewayBackendPool/delete"))
    assert refused.status_code == 400
    message = general_error(refused.text)
    assert "was not deleted" in message
    assert "Rules using it: rule1" in message
    assert "does not exist" in message, "the service's own words are shown too"
    assert stored(api)["etag"] == before
    assert_refused_without_csrf(browser, listed, screen("pools/appGatewayBackendPool/delete"), api)


def test_a_change_made_meanwhile_is_not_overwritten(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("pools/add"))
    # Someone else changes the gateway after the form was loaded.
    document = stored(api)
    document["tags"] = {"changed": "meanwhile"}
    assert api.client.put(gateway_url(), json=document).status_code == 200
    stale = browser.submit(page, screen("pools/add"), pool_name="pool5", without_targets="Yes")
    assert stale.status_code == 412
    assert "was changed" in general_error(stale.text)
    assert child(stored(api), "backendAddressPools", "pool5") is None
    # The form shown again builds on the current version: sent again, it is saved.
    shown = re.search(r'name="etag" value="([^"]*)"', stale.text)
    assert shown and html.unescape(shown[1]) == stored(api)["etag"]
    accepted(browser, stale.text, screen("pools/add"))
    assert child(stored(api), "backendAddressPools", "pool5") is not None


# --- rules ---------------------------------------------------------------------------------------

# Form fields: a new rule on the free HTTP listener, to the skeleton's pool with its settings.
RULE2: dict[str, str | list[str]] = {
    "rule_name": "rule2",
    "priority": "200",
    "listener": "httpListener",
}
TO_POOL: dict[str, str | list[str]] = {
    "target_type": "BackendPool",
    "backend_pool": "appGatewayBackendPool",
    "backend_settings": "appGatewayBackendHttpSettings",
}


def path_row(row: int, paths: str, name: str) -> dict[str, str | list[str]]:
    """Form fields of a path target row, to the skeleton's pool with its settings."""
    return {
        f"path_{row}": paths,
        f"path_name_{row}": name,
        f"path_settings_{row}": "appGatewayBackendHttpSettings",
        f"path_target_{row}": "appGatewayBackendPool",
    }


def test_add_a_basic_rule_then_redirect_then_path_based_then_delete(
    portal: tuple[Api, Browser],
) -> None:
    api, browser = portal
    page = browser.get(screen("rules/add"))
    assert 'value="httpListener" selected' in page, "the free listener is proposed"
    accepted(
        browser,
        page,
        screen("rules/add"),
        **RULE2,
        **TO_POOL,
    )
    p = properties(stored(api), "requestRoutingRules", "rule2")
    assert (p["ruleType"], p["priority"]) == ("Basic", 200)
    assert p["httpListener"]["id"].endswith("/httpListeners/httpListener")
    assert p["backendAddressPool"]["id"].endswith("/backendAddressPools/appGatewayBackendPool")
    listed = browser.get(screen("rules"))
    assert "rule2" in listed and "200" in listed

    # Redirection to the HTTPS listener: a redirect configuration named after the rule.
    edit = browser.get(screen("rules/rule2/edit"))
    accepted(
        browser,
        edit,
        screen("rules/rule2/edit"),
        target_type="Redirection",
        redirect_type="Permanent",
        redirect_target="Listener",
        target_listener="appGatewayHttpListener",
        include_path="Yes",
        include_query_string="No",
    )
    document = stored(api)
    p = properties(document, "requestRoutingRules", "rule2")
    assert "backendAddressPool" not in p
    assert p["redirectConfiguration"]["id"].endswith("/redirectConfigurations/rule2")
    r = properties(document, "redirectConfigurations", "rule2")
    assert r["redirectType"] == "Permanent"
    assert r["targetListener"]["id"].endswith("/httpListeners/appGatewayHttpListener")
    assert (r["includePath"], r["includeQueryString"]) == (True, False)
    edit = browser.get(screen("rules/rule2/edit"))
    assert is_checked(edit, "target_type", "Redirection")

    # Back to a backend pool, with path targets: a URL path map named after the rule.
    accepted(
        browser,
        edit,
        screen("rules/rule2/edit"),
        **TO_POOL,
        **path_row(0, "/images/*, /img/*", "images"),
    )
    document = stored(api)
    p = properties(document, "requestRoutingRules", "rule2")
    assert p["ruleType"] == "PathBasedRouting"
    assert p["urlPathMap"]["id"].endswith("/urlPathMaps/rule2")
    assert "backendAddressPool" not in p
    m = properties(document, "urlPathMaps", "rule2")
    assert m["defaultBackendAddressPool"]["id"].endswith("/appGatewayBackendPool")
    assert [r["name"] for r in m["pathRules"]] == ["images"]
    assert m["pathRules"][0]["properties"]["paths"] == ["/images/*", "/img/*"]
    assert child(document, "redirectConfigurations", "rule2") is None, "unused redirect removed"
    edit = browser.get(screen("rules/rule2/edit"))
    assert 'value="/images/*, /img/*"' in edit

    listed = browser.get(screen("rules"))
    assert "Path-based" in listed
    assert_refused_without_csrf(browser, listed, screen("rules/rule2/delete"), api)
    accepted(browser, listed, screen("rules/rule2/delete"))
    document = stored(api)
    assert child(document, "requestRoutingRules", "rule2") is None
    assert child(document, "urlPathMaps", "rule2") is None, "its path map goes with the rule"


def test_rule_errors_show_next_to_their_field(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    valid = {**RULE2, **TO_POOL}
    bad_path = path_row(1, "images/*", "images")
    external = {
        "target_type": "Redirection",
        "redirect_target": "ExternalSite",
        "target_url": "ftp://example.com",
    }
    assert_refusals(
        api,
        browser,
        "rules/add",
        [
            ({**valid, "priority": "0"}, "priority", "priority 0 is outside 1-20000"),
            ({**valid, "priority": "100"}, "priority", "already used by rule 'rule1'"),
            (
                {**valid, "listener": "appGatewayHttpListener"},
                "listener",
                "already used by rule 'rule1'",
            ),
            ({**valid, "rule_name": "RULE1"}, "rule_name", "two entries are named"),
            ({**valid, **external}, "target_url", "not an absolute http or https URL"),
            ({**valid, **bad_path}, "path_1", "must start with '/'"),
        ],
    )

    # Azure reports a duplicate priority on the later rule (here rule2, not the edited rule1);
    # the error still belongs next to this form's Priority field.
    accepted(browser, browser.get(screen("rules/add")), screen("rules/add"), **valid)
    edit = browser.get(screen("rules/rule1/edit"))
    refused(browser, edit, screen("rules/rule1/edit"), "priority", "priority 200", priority="200")


# --- overview: Start, Stop, Delete, Refresh ---------------------------------------------------


def is_disabled(page: str, action: str) -> bool:
    """Whether the button of the form posting to `action` is disabled."""
    match = re.search(
        rf'<form method="post" action="{re.escape(action)}">.*?<button([^>]*)>', page, re.S
    )
    assert match is not None, f"no button posting to {action}"
    return "disabled" in match[1]


def test_overview_stops_and_starts_the_gateway(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("overview"))
    assert f'href="{screen("overview")}">Refresh</a>' in page
    assert is_disabled(page, screen("overview/start")) and not is_disabled(
        page, screen("overview/stop")
    )
    before = stored(api)["etag"]
    assert browser.submit(page, screen("overview/stop"), csrf="").status_code == 403
    assert stored(api)["etag"] == before, "a form without the CSRF token stopped the gateway"

    stopped = accepted(browser, page, screen("overview/stop"))
    assert stopped.headers["location"] == screen("overview")
    assert stored(api)["properties"]["operationalState"] == "Stopped"
    page = browser.get(screen("overview"))
    assert "Application gateway &#39;appgw&#39; stopped." in page
    assert not is_disabled(page, screen("overview/start")) and is_disabled(
        page, screen("overview/stop")
    )

    accepted(browser, page, screen("overview/start"))
    assert stored(api)["properties"]["operationalState"] == "Running"
    log = browser.get(screen("activity"))
    assert "Microsoft.Network/applicationGateways/stop/action" in log
    assert "Microsoft.Network/applicationGateways/start/action" in log


def test_overview_deletes_after_the_name_is_typed(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    overview = browser.get(screen("overview"))
    assert f'href="{screen("overview/delete")}">Delete</a>' in overview
    page = browser.get(screen("overview/delete"))
    assert "Delete application gateway appgw?" in page and f"resource group '{RG}'" in page

    shown = refused(
        browser,
        page,
        screen("overview/delete"),
        "confirm_name",
        "Type the gateway's name",
        confirm_name="appg",
    )
    assert 'value="appg"' in shown, "what was typed is shown again"
    assert (
        browser.submit(page, screen("overview/delete"), confirm_name="appgw", csrf="").status_code
        == 403
    )
    assert stored(api)["name"] == "appgw", "nothing was deleted"

    deleted = accepted(browser, page, screen("overview/delete"), confirm_name="appgw")
    assert deleted.headers["location"] == "/portal/resources"
    assert api.client.get(gateway_url()).status_code == 404
    assert "Application gateway &#39;appgw&#39; deleted." in browser.get("/portal/resources")


def test_overview_delete_of_a_changed_gateway_deletes_nothing(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("overview/delete"))
    accepted(browser, browser.get(screen("overview")), screen("overview/stop"))
    answer = browser.submit(page, screen("overview/delete"), confirm_name="appgw")
    assert answer.status_code == 412, answer.text
    assert "was changed since this page was shown" in answer.text
    assert stored(api)["name"] == "appgw"


# --- configuration -------------------------------------------------------------------------------


def test_configuration_capacity(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("configuration"))
    autoscale = {"capacity_type": "Autoscale", "autoscale_min": "2", "autoscale_max": "10"}
    accepted(browser, page, screen("configuration"), **autoscale)
    props = stored(api)["properties"]
    assert props["autoscaleConfiguration"] == {"minCapacity": 2, "maxCapacity": 10}
    assert "capacity" not in props["sku"]

    page = browser.get(screen("configuration"))
    assert is_checked(page, "capacity_type", "Autoscale")
    accepted(browser, page, screen("configuration"), capacity_type="Manual", instance_count="3")
    props = stored(api)["properties"]
    assert props["sku"]["capacity"] == 3
    assert not props.get("autoscaleConfiguration")

    backwards: dict[str, str | list[str]] = {
        **autoscale,
        "autoscale_min": "5",
        "autoscale_max": "3",
    }
    _backwards, too_many = assert_refusals(
        api,
        browser,
        "configuration",
        [
            (backwards, "autoscale_max", "below minCapacity"),
            ({"instance_count": "126"}, "instance_count", "less than or equal to 125"),
        ],
    )
    assert is_checked(too_many, "capacity_type", "Manual"), "the choice is kept when re-shown"


def test_configuration_http2(portal: tuple[Api, Browser]) -> None:
    """Azure's HTTP2 choice: Enabled is stored as enableHttp2 and shown checked; Disabled turns it
    off again; any other value leaves it as stored."""
    api, browser = portal
    page = browser.get(screen("configuration"))
    assert "HTTP2" in page
    assert is_checked(page, "http2", "Disabled") and not is_checked(page, "http2", "Enabled")
    accepted(browser, page, screen("configuration"), http2="Enabled")
    assert stored(api)["properties"]["enableHttp2"] is True

    page = browser.get(screen("configuration"))
    assert is_checked(page, "http2", "Enabled") and not is_checked(page, "http2", "Disabled")
    accepted(browser, page, screen("configuration"), http2="maybe", instance_count="3")
    props = stored(api)["properties"]
    assert props["enableHttp2"] is True and props["sku"]["capacity"] == 3

    page = browser.get(screen("configuration"))
    accepted(browser, page, screen("configuration"), http2="Disabled")
    assert stored(api)["properties"]["enableHttp2"] is False
    assert is_checked(browser.get(screen("configuration")), "http2", "Disabled")


# --- SSL settings --------------------------------------------------------------------------------


def test_ssl_policy_predefined_and_custom(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    page = browser.get(screen("ssl"))
    assert is_checked(page, "policy_name", "AppGwSslPolicy20220101")
    accepted(
        browser,
        page,
        screen("ssl"),
        policy_type="Predefined",
        policy_name="AppGwSslPolicy20220101S",
    )
    assert stored(api)["properties"]["sslPolicy"] == {
        "policyType": "Predefined",
        "policyName": "AppGwSslPolicy20220101S",
    }

    page = browser.get(screen("ssl"))
    suites = ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    accepted(
        browser,
        page,
        screen("ssl"),
        policy_type="CustomV2",
        min_protocol_version="TLSv1_2",
        cipher_suites=suites,
    )
    # Ticked suites are listed in Azure's order (the REST enum's, which ends with these two).
    assert stored(api)["properties"]["sslPolicy"] == {
        "policyType": "CustomV2",
        "minProtocolVersion": "TLSv1_2",
        "cipherSuites": suites[::-1],
    }
    # Set through the API in another order: that order is kept, new suites go last.
    document = stored(api)
    document["properties"]["sslPolicy"]["cipherSuites"] = suites
    assert api.client.put(gateway_url(), json=document).status_code == 200
    page = browser.get(screen("ssl"))
    ecdsa = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    accepted(browser, page, screen("ssl"), cipher_suites=[ecdsa, *suites])
    assert stored(api)["properties"]["sslPolicy"]["cipherSuites"] == [*suites, ecdsa]
    page = browser.get(screen("ssl"))
    assert is_checked(page, "policy_type", "CustomV2")


def test_ssl_policy_errors_show_next_to_their_field(portal: tuple[Api, Browser]) -> None:
    api, browser = portal
    custom = {"policy_type": "Custom", "min_protocol_version": "TLSv1_2"}
    assert_refusals(
        api,
        browser,
        "ssl",
        [
            (
                {"policy_type": "Predefined", "policy_name": "AppGwSslPolicy20150501"},
                "policy_name",
                "retired",
            ),
            (
                {**custom, "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]},
                "cipher_suites",
                "must enable one of",
            ),
            (
                {
                    **custom,
                    "min_protocol_version": "TLSv1_0",
                    "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                },
                "min_protocol_version",
                "retired",
            ),
        ],
    )


# --- activity log --------------------------------------------------------------------------------


def test_activity_log_lists_changes_and_refusals(portal: tuple[Api, Browser]) -> None:
    _api, browser = portal
    page = browser.get(screen("configuration"))
    assert browser.submit(page, screen("configuration"), instance_count="126").status_code == 400
    assert browser.submit(page, screen("configuration"), instance_count="4").status_code == 303
    log = browser.get(screen("activity"))
    assert "Failed" in log and "Succeeded" in log
    assert re.search(r'<ul class="field-error"><li><code>\w+</code>', log), "the refusal's code"
    assert "Microsoft.Network/applicationGateways/write" in log
    caller = re.search(r'data-label="Event initiated by">([^<]+)', log)
    assert caller is not None and caller[1].strip(), "the caller is shown"


# --- v1 ------------------------------------------------------------------------------------------


def test_v1_gateway_screens_offer_v1_choices_only(
    portal: tuple[Api, Browser], pfx: Pfx, root_cer: str
) -> None:
    api, browser = portal
    created = api.client.put(gateway_url("appgw1"), json=v1_gateway(pfx, root_cer))
    assert created.status_code in (200, 201), created.text

    configuration = browser.get(screen("configuration", "appgw1"))
    assert 'value="Autoscale"' not in configuration
    assert 'max="32"' in configuration

    ssl_page = browser.get(screen("ssl", "appgw1"))
    assert 'value="CustomV2"' not in ssl_page
    assert "AppGwSslPolicy20220101" not in ssl_page

    rules = browser.get(screen("rules/add", "appgw1"))
    assert 'name="priority"' not in rules
    edit = browser.get(screen("rules/rule1/edit", "appgw1"))
    accepted(browser, edit, screen("rules/rule1/edit", "appgw1"))
    assert (
        "priority"
        not in stored(api, "appgw1")["properties"]["requestRoutingRules"][0]["properties"]
    )

    refused(
        browser,
        configuration,
        screen("configuration", "appgw1"),
        "instance_count",
        "1-32",
        instance_count="33",
    )


def test_path_based_rule_whose_default_redirects_to_an_external_site(
    portal: tuple[Api, Browser],
) -> None:
    api, browser = portal
    page = browser.get(screen("rules/add"))
    accepted(
        browser,
        page,
        screen("rules/add"),
        **RULE2,
        target_type="Redirection",
        redirect_type="Found",
        redirect_target="ExternalSite",
        target_url="https://www.contoso.com",
        include_path="No",
        include_query_string="Yes",
        **path_row(0, "/api/*", "api"),
    )
    document = stored(api)
    m = properties(document, "urlPathMaps", "rule2")
    assert m["defaultRedirectConfiguration"]["id"].endswith("/redirectConfigurations/rule2")
    assert "defaultBackendAddressPool" not in m
    assert m["pathRules"][0]["properties"]["backendAddressPool"]["id"].endswith(
        "/appGatewayBackendPool"
    )
    r = properties(document, "redirectConfigurations", "rule2")
    assert (r["redirectType"], r["targetUrl"]) == ("Found", "https://www.contoso.com")
    assert (r["includePath"], r["includeQueryString"]) == (False, True)
    assert "targetListener" not in r

    # The edit form shows all of it again, and saving it unchanged changes nothing but the etag.
    edit = browser.get(screen("rules/rule2/edit"))
    assert is_checked(edit, "target_type", "Redirection")
    assert is_checked(edit, "redirect_target", "ExternalSite")
    assert 'value="https://www.contoso.com"' in edit
    before = stored(api)["properties"]
    assert browser.submit(edit, screen("rules/rule2/edit")).status_code == 303
    after = stored(api)["properties"]
    for collection in ("requestRoutingRules", "urlPathMaps", "redirectConfigurations"):
        assert without_etags(after[collection]) == without_etags(before[collection]), collection

    # A path target may redirect too (to an existing redirect configuration).
    edit = browser.get(screen("rules/rule2/edit"))
    assert 'value="redirect:rule2"' in edit
    accepted(
        browser,
        edit,
        screen("rules/rule2/edit"),
        path_target_0="redirect:rule2",
        path_settings_0="",
    )
    path_map = properties(stored(api), "urlPathMaps", "rule2")
    rule_props = path_map["pathRules"][0]["properties"]
    assert rule_props["redirectConfiguration"]["id"].endswith("/redirectConfigurations/rule2")
    assert "backendAddressPool" not in rule_props
