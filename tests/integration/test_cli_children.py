"""The real `appgw` child-group commands (ssl-cert ... redirect-config) against a real
`appgw serve`: create/show/list/update/delete per group, table output, unknown names, bad
certificates, and the If-Match conflict made deterministic by a relay between CLI and API."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from backends import free_port
from helpers import (
    Pfx,
    ServeProcess,
    cli as appgw,
    cli_ok as ok,
    cli_refused as refused,
    fresh_gateway,
    gateway_url,
    make_pfx,
)

pytestmark = pytest.mark.slow

GW = ("-g", "rg1", "--gateway-name", "appgw", "--subscription", "sub1")


@pytest.fixture
def api(server: ServeProcess, pfx: Pfx, root_cer: str) -> Iterator[httpx.Client]:
    """A fresh gateway for each test, on a free port."""
    with fresh_gateway(server.base_url, pfx, root_cer, free_port()) as client:
        yield client


def stored(api: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = api.get(gateway_url()).json()
    return document


def names(api: httpx.Client, collection: str) -> list[str]:
    return [child["name"] for child in stored(api)["properties"][collection]]


def last(reference: dict[str, str]) -> str:
    return reference["id"].rsplit("/", 1)[-1]


# --- TLS groups ---------------------------------------------------------------------------------


def test_certificate_groups_and_ssl_policy(
    server: ServeProcess, api: httpx.Client, tmp_path: Path, ca: trustme.CA, pfx: Pfx
) -> None:
    pfx_file = tmp_path / "site.pfx"
    pfx_file.write_bytes(base64.b64decode(pfx.b64))
    created = ok(
        server, "ssl-cert", "create", *GW, "-n", "siteCert", "--cert-file", str(pfx_file),
        "--cert-password-stdin", stdin=pfx.password + "\n",
    )  # fmt: skip
    assert created["name"] == "siteCert" and created["publicCertData"]
    assert pfx.password not in json.dumps(stored(api)) + json.dumps(created)
    wrong = refused(
        server, "ssl-cert", "create", *GW, "-n", "other", "--cert-file", str(pfx_file),
        "--cert-password", "wrong",
    )  # fmt: skip
    assert "--cert-file" in wrong and "password" in wrong and "incorrect" in wrong
    garbage = tmp_path / "garbage.pfx"
    garbage.write_bytes(b"\x30\x03not a pfx at all")
    # Files are checked before any request: no API listens at this address.
    nowhere = f"http://127.0.0.1:{free_port()}"
    bad = refused(
        nowhere, "ssl-cert", "create", *GW, "-n", "other", "--cert-file", str(garbage),
        "--cert-password", "x",
    )  # fmt: skip
    assert str(garbage) in bad and "PFX" in bad and "cannot reach" not in bad
    missing = refused(
        server, "ssl-cert", "create", *GW, "-n", "other", "--cert-file", str(tmp_path / "no.pfx")
    )
    assert "no.pfx" in missing and "no such file" in missing
    renewed = make_pfx(ca, "www.contoso.com", password="Renewed1")
    pfx_file.write_bytes(base64.b64decode(renewed.b64))
    before = ok(server, "ssl-cert", "show", *GW, "-n", "siteCert")["publicCertData"]
    updated = ok(
        server, "ssl-cert", "update", *GW, "-n", "siteCert", "--cert-file", str(pfx_file),
        "--cert-password", "Renewed1",
    )  # fmt: skip
    assert updated["publicCertData"] != before
    table = appgw(server, "ssl-cert", "list", *GW, "-o", "table")
    header, rule, *rows = table.stdout.splitlines()
    assert header.split() == ["Name", "ProvisioningState", "PublicCertData", "ResourceGroup"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert [row.split()[0] for row in rows] == ["appgwSslCert", "siteCert"]
    assert ok(server, "ssl-cert", "delete", *GW, "-n", "siteCert") is None
    assert names(api, "sslCertificates") == ["appgwSslCert"]

    # root-cert: PEM, DER and Base-64 files all become the API's base64 DER.
    root = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    der = root.public_bytes(serialization.Encoding.DER)
    expected = base64.b64encode(der).decode()
    files = {"pem": ca.cert_pem.bytes(), "der": der, "b64": base64.encodebytes(der)}
    for form, content in files.items():
        (tmp_path / f"root.{form}").write_bytes(content)
    made = ok(
        server,
        "root-cert",
        "create",
        *GW,
        "-n",
        "pemRoot",
        "--cert-file",
        str(tmp_path / "root.pem"),
    )
    assert made["data"] == expected
    ok(
        server,
        "root-cert",
        "update",
        *GW,
        "-n",
        "pemRoot",
        "--cert-file",
        str(tmp_path / "root.der"),
    )
    shown = ok(server, "root-cert", "show", *GW, "-n", "pemRoot")
    assert shown["data"] == expected
    listed = ok(server, "root-cert", "list", *GW, "--query", "[].name")
    assert listed == ["backendRoot", "pemRoot"]
    not_cer = refused(
        server, "root-cert", "create", *GW, "-n", "x", "--cert-file", str(tmp_path / "site.pfx")
    )
    assert (
        "site.pfx" in not_cer and "this is a PFX (PKCS#12); upload the certificate only" in not_cer
    )
    ok(server, "root-cert", "delete", *GW, "-n", "pemRoot")
    assert names(api, "trustedRootCertificates") == ["backendRoot"]

    policy = ok(
        server, "ssl-policy", "set", *GW, "--policy-type", "CustomV2",
        "--min-protocol-version", "TLSv1_2",
        "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "tls_aes_128_gcm_sha256",
    )  # fmt: skip
    assert policy["policyType"] == "CustomV2" and policy["minProtocolVersion"] == "TLSv1_2"
    assert policy["cipherSuites"][0] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert ok(server, "ssl-policy", "show", *GW)["policyType"] == "CustomV2"
    bad_suite = refused(
        server, "ssl-policy", "set", *GW, "--policy-type", "Custom", "--cipher-suites", "NOPE"
    )
    assert "--cipher-suites" in bad_suite and "'NOPE'" in bad_suite
    predefined = ok(
        server,
        "ssl-policy",
        "set",
        *GW,
        "--policy-type",
        "Predefined",
        "-n",
        "AppGwSslPolicy20220101S",
    )
    assert predefined == {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101S"}
    assert "--clear" in refused(server, "ssl-policy", "set", *GW)
    ok(server, "ssl-policy", "set", *GW, "--clear")
    assert "sslPolicy" not in stored(api)["properties"]
    options = ok(server, "ssl-policy", "list-options", "--subscription", "sub1")
    assert "TLSv1_3" in options["availableProtocols"]
    listed_policies = ok(server, "ssl-policy", "predefined", "list", "--query", "[].name")
    assert "AppGwSslPolicy20220101" in listed_policies
    one = ok(server, "ssl-policy", "predefined", "show", "-n", "AppGwSslPolicy20220101")
    assert one["minProtocolVersion"] == "TLSv1_2"


def test_http_settings_trust_several_roots(
    server: ServeProcess, api: httpx.Client, root_cer: str, tmp_path: Path
) -> None:
    """As az: `--root-certs a b` (one flag, several names) trusts both, in that order."""
    cer = tmp_path / "second.cer"
    cer.write_text(root_cer)
    ok(server, "root-cert", "create", *GW, "-n", "secondRoot", "--cert-file", str(cer))
    settings = ok(
        server, "http-settings", "update", *GW, "-n", "appGatewayBackendHttpSettings",
        "--root-certs", "backendRoot", "secondRoot",
    )  # fmt: skip
    assert [last(r) for r in settings["trustedRootCertificates"]] == ["backendRoot", "secondRoot"]
    created = ok(
        server, "http-settings", "create", *GW, "-n", "settings2", "--port", "443",
        "--protocol", "Https", "--root-certs", "secondRoot", "backendRoot", "--timeout", "40",
    )  # fmt: skip
    assert [last(r) for r in created["trustedRootCertificates"]] == ["secondRoot", "backendRoot"]
    assert created["requestTimeout"] == 40


def test_auth_cert_on_a_v1_gateway(
    server: ServeProcess, api: httpx.Client, tmp_path: Path, backend_ca: trustme.CA
) -> None:
    document = stored(api)
    document["properties"]["sku"] = {"name": "Standard_Medium", "tier": "Standard", "capacity": 2}
    for settings in document["properties"]["backendHttpSettingsCollection"]:
        settings["properties"].pop("trustedRootCertificates", None)
    document["properties"]["trustedRootCertificates"] = []
    document["properties"]["sslPolicy"] = None
    for rule in document["properties"]["requestRoutingRules"]:
        rule["properties"].pop("priority", None)
    v1 = api.put(gateway_url(), json=document)
    assert v1.status_code == 200, v1.text
    cer = tmp_path / "backend.cer"
    cer.write_bytes(backend_ca.cert_pem.bytes())
    made = ok(server, "auth-cert", "create", *GW, "-n", "backendCert", "--cert-file", str(cer))
    assert base64.b64decode(made["data"])[:1] == b"\x30"
    settings = ok(
        server, "http-settings", "update", *GW, "-n", "appGatewayBackendHttpSettings",
        "--auth-certs", "backendCert",
    )  # fmt: skip
    assert [last(r) for r in settings["authenticationCertificates"]] == ["backendCert"]
    ok(server, "auth-cert", "update", *GW, "-n", "backendCert", "--cert-file", str(cer))
    assert ok(server, "auth-cert", "show", *GW, "-n", "backendCert")["name"] == "backendCert"
    assert ok(server, "auth-cert", "list", *GW, "--query", "[].name") == ["backendCert"]
    ok(
        server,
        "http-settings",
        "update",
        *GW,
        "-n",
        "appGatewayBackendHttpSettings",
        "--auth-certs",
        "",
    )
    ok(server, "auth-cert", "delete", *GW, "-n", "backendCert")
    assert names(api, "authenticationCertificates") == []


# --- routing groups -----------------------------------------------------------------------------


def test_routing_groups(server: ServeProcess, api: httpx.Client) -> None:
    port = str(free_port())
    assert ok(server, "frontend-port", "create", *GW, "-n", "port2", "--port", port)["port"] == int(
        port
    )
    other = str(free_port())
    ok(server, "frontend-port", "update", *GW, "-n", "port2", "--port", other)
    assert ok(server, "frontend-port", "show", *GW, "-n", "port2")["port"] == int(other)

    pool = ok(
        server,
        "address-pool",
        "create",
        *GW,
        "-n",
        "pool2",
        "--servers",
        "10.0.2.4",
        "api.contoso.com",
    )
    assert pool["backendAddresses"] == [
        {"ipAddress": "10.0.2.4"},
        {"fqdn": "api.contoso.com"},
    ]
    ok(server, "address-pool", "update", *GW, "-n", "pool2", "--servers", "10.0.2.5,10.0.2.6")
    table = appgw(server, "address-pool", "list", *GW, "-o", "table").stdout.splitlines()
    # az's table: the scalar fields only (the addresses are a list), with ResourceGroup.
    assert table[0].split() == ["Name", "ProvisioningState", "ResourceGroup"]
    assert table[2].split() == ["appGatewayBackendPool", "Succeeded", "rg1"]
    assert table[3].split() == ["pool2", "Succeeded", "rg1"]

    probe = ok(
        server, "probe", "create", *GW, "-n", "probe2", "--protocol", "Http", "--path", "/ready",
        "--host-name-from-http-settings", "true", "--match-status-codes", "200", "204",
    )  # fmt: skip
    assert probe["interval"] == 30 and probe["timeout"] == 120
    assert probe["unhealthyThreshold"] == 8
    assert probe["match"]["statusCodes"] == ["200", "204"]
    updated = ok(
        server, "probe", "update", *GW, "-n", "probe2", "--interval", "10", "--match-body", "ok"
    )
    assert updated["interval"] == 10 and updated["timeout"] == 120
    assert updated["match"] == {"statusCodes": ["200", "204"], "body": "ok"}

    settings = ok(
        server, "http-settings", "create", *GW, "-n", "settings2", "--port", "8080",
        "--probe", "probe2", "--enable-probe", "true", "--connection-draining-timeout", "30",
        "--host-name-from-backend-pool", "true",
    )  # fmt: skip
    props = settings
    assert props["protocol"] == "Http" and props["cookieBasedAffinity"] == "Disabled"
    assert props["requestTimeout"] == 30 and last(props["probe"]) == "probe2"
    assert props["connectionDraining"] == {"enabled": True, "drainTimeoutInSec": 30}
    https = ok(
        server, "http-settings", "update", *GW, "-n", "settings2", "--protocol", "Https",
        "--port", "443", "--root-certs", "backendRoot", "--probe", "", "--enable-probe", "false",
    )  # fmt: skip
    assert https["requestTimeout"] == 30 and https["port"] == 443
    assert [last(r) for r in https["trustedRootCertificates"]] == ["backendRoot"]
    assert "probe" not in https

    listener = ok(
        server, "http-listener", "create", *GW, "-n", "listener2", "--frontend-port", "port2"
    )
    props = listener
    assert (
        props["protocol"] == "Http"
        and last(props["frontendIPConfiguration"]) == "appGatewayFrontendIP"
    )
    secure = ok(
        server, "http-listener", "update", *GW, "-n", "listener2", "--ssl-cert", "appgwSslCert",
        "--host-name", "api.contoso.com",
    )  # fmt: skip
    assert secure["protocol"] == "Https"
    assert secure["requireServerNameIndication"] is True
    wild = ok(
        server,
        "http-listener",
        "update",
        *GW,
        "-n",
        "listener2",
        "--host-names",
        "*.contoso.com",
        "--host-names",
        "contoso.com",
    )
    assert wild["hostNames"] == ["*.contoso.com", "contoso.com"] and "hostName" not in wild

    several = refused(server, "rule", "create", *GW, "-n", "rule2", "--priority", "200")
    assert "--http-listener is needed" in several and "appGatewayHttpListener, listener2" in several
    rule = ok(
        server, "rule", "create", *GW, "-n", "rule2", "--priority", "200",
        "--http-listener", "listener2", "--address-pool", "pool2", "--http-settings", "settings2",
    )  # fmt: skip
    assert rule["ruleType"] == "Basic" and last(rule["backendAddressPool"]) == "pool2"

    redirect = ok(
        server, "redirect-config", "create", *GW, "-n", "toSecure", "-t", "Permanent",
        "--target-listener", "appGatewayHttpListener", "--include-path", "true",
    )  # fmt: skip
    assert redirect["redirectType"] == "Permanent"
    to_url = ok(
        server,
        "redirect-config",
        "update",
        *GW,
        "-n",
        "toSecure",
        "--target-url",
        "https://contoso.com",
    )
    assert "targetListener" not in to_url and to_url["includePath"] is True
    assert ok(server, "redirect-config", "list", *GW, "--query", "[].name") == ["toSecure"]

    path_map = ok(
        server, "url-path-map", "create", *GW, "-n", "map1", "--paths", "/images/*",
        "--address-pool", "pool2", "--http-settings", "settings2",
    )  # fmt: skip
    props = path_map
    assert last(props["defaultBackendAddressPool"]) == "pool2"
    assert props["pathRules"][0]["name"] == "default" and props["pathRules"][0]["paths"] == [
        "/images/*"
    ]
    ok(
        server,
        "url-path-map",
        "update",
        *GW,
        "-n",
        "map1",
        "--default-address-pool",
        "appGatewayBackendPool",
    )
    in_map = ("--path-map-name", "map1")
    video = ok(
        server, "url-path-map", "rule", "create", *GW, *in_map, "-n", "video", "--paths", "/video/*"
    )
    assert last(video["backendAddressPool"]) == "appGatewayBackendPool"
    assert last(video["backendHttpSettings"]) == "settings2"
    moved = ok(
        server,
        "url-path-map",
        "rule",
        "update",
        *GW,
        *in_map,
        "-n",
        "video",
        "--paths",
        "/v/* /media/*",
    )
    assert moved["paths"] == ["/v/*", "/media/*"]
    assert (
        ok(server, "url-path-map", "rule", "show", *GW, *in_map, "-n", "video")["name"] == "video"
    )
    assert ok(server, "url-path-map", "rule", "list", *GW, *in_map, "--query", "[].name") == [
        "default",
        "video",
    ]
    ok(server, "url-path-map", "rule", "delete", *GW, *in_map, "-n", "video")
    no_map = refused(server, "url-path-map", "rule", "list", *GW, "--path-map-name", "nope")
    assert "--path-map-name 'nope'" in no_map and "map1" in no_map
    routed = ok(
        server, "rule", "update", *GW, "-n", "rule2", "--rule-type", "PathBasedRouting",
        "--url-path-map", "map1", "--address-pool", "", "--http-settings", "",
    )  # fmt: skip
    assert last(routed["urlPathMap"]) == "map1"
    assert "backendAddressPool" not in routed
    assert ok(server, "url-path-map", "show", *GW, "-n", "map1")["name"] == "map1"
    assert ok(server, "rule", "show", *GW, "-n", "rule2")["ruleType"] == "PathBasedRouting"

    # Delete in reverse order of reference; each step is its own GET -> PUT.
    for group, name in (
        ("rule", "rule2"), ("url-path-map", "map1"), ("redirect-config", "toSecure"),
        ("http-listener", "listener2"), ("http-settings", "settings2"), ("probe", "probe2"),
        ("address-pool", "pool2"), ("frontend-port", "port2"),
    ):  # fmt: skip
        ok(server, group, "delete", *GW, "-n", name)
    after = stored(api)["properties"]
    assert [c["name"] for c in after["requestRoutingRules"]] == ["rule1"]
    assert after["urlPathMaps"] == [] and after["redirectConfigurations"] == []
    assert [c["name"] for c in after["probes"]] == ["httpsProbe"]


def test_frontend_ip(server: ServeProcess, api: httpx.Client) -> None:
    subnet = (
        "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/"
        "vnet/subnets/appgw"
    )
    made = ok(
        server, "frontend-ip", "create", *GW, "-n", "appGatewayPrivateFrontendIP",
        "--private-ip-address", "127.0.0.1", "--subnet", subnet,
    )  # fmt: skip
    assert made["privateIPAddress"] == "127.0.0.1"
    assert made["privateIPAllocationMethod"] == "Static"
    assert made["subnet"]["id"] == subnet
    public = ok(
        server,
        "frontend-ip",
        "update",
        *GW,
        "-n",
        "appGatewayFrontendIP",
        "--public-ip-address",
        "pip2",
    )
    assert public["publicIPAddress"]["id"].endswith(
        "/rg1/providers/Microsoft.Network/publicIPAddresses/pip2"
    )
    assert len(ok(server, "frontend-ip", "list", *GW)) == 2
    assert ok(server, "frontend-ip", "show", *GW, "-n", "appGatewayPrivateFrontendIP")["name"]
    ok(server, "frontend-ip", "delete", *GW, "-n", "appGatewayPrivateFrontendIP")
    assert names(api, "frontendIPConfigurations") == ["appGatewayFrontendIP"]


# --- errors -------------------------------------------------------------------------------------


def test_unknown_names_and_duplicates_change_nothing(
    server: ServeProcess, api: httpx.Client
) -> None:
    etag = stored(api)["etag"]
    shown = refused(server, "probe", "show", *GW, "-n", "nope")
    assert "--name 'nope'" in shown and "no probe" in shown and "httpsProbe" in shown
    deleted = refused(server, "address-pool", "delete", *GW, "-n", "nope")
    assert "no backend address pool" in deleted and "appGatewayBackendPool" in deleted
    reference = refused(
        server,
        "http-settings",
        "update",
        *GW,
        "-n",
        "appGatewayBackendHttpSettings",
        "--probe",
        "nope",
    )
    assert "--probe 'nope'" in reference and "(existing: httpsProbe)" in reference
    twice = refused(
        server, "frontend-port", "create", *GW, "-n", "appGatewayFrontendPort", "--port", "1"
    )
    assert "already exists" in twice and "frontend-port update" in twice
    api_refusal = refused(server, "frontend-port", "delete", *GW, "-n", "appGatewayFrontendPort")
    assert "appGatewayFrontendPort" in api_refusal  # still used by the listener: the API says so
    assert stored(api)["etag"] == etag


def test_a_concurrent_change_is_not_overwritten(server: ServeProcess, api: httpx.Client) -> None:
    """A relay passes the CLI's GET, then lets a competing PUT reach the API before the
    CLI's own PUT: the CLI must stop with the conflict message, and the competitor's change
    must be what is stored."""

    class Relay(BaseHTTPRequestHandler):
        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            answer = api.request(self.command, self.path, content=body, headers=headers)
            if self.command == "GET" and "applicationGateways/appgw" in self.path:
                competitor = stored(api)
                competitor["tags"] = {"changedBy": "someone else"}
                assert api.put(gateway_url(), json=competitor).status_code == 200
            self.send_response(answer.status_code)
            for name in ("content-type",):
                self.send_header(name, answer.headers[name])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_PUT = _relay

        def log_message(self, *args: Any) -> None:
            pass

    relay = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{relay.server_address[1]}"
        message = refused(url, "address-pool", "create", *GW, "-n", "mine", "--servers", "10.0.9.9")
    finally:
        relay.shutdown()
        relay.server_close()
    assert (
        "the gateway changed since it was read; nothing was saved; run the command again" in message
    )
    after = stored(api)
    assert after["tags"] == {"changedBy": "someone else"}
    assert "mine" not in [pool["name"] for pool in after["properties"]["backendAddressPools"]]


def test_every_child_command_has_an_example() -> None:
    import typer

    from appgw.cli.main import app

    def leaves(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            for name, sub in command.commands.items():
                yield from leaves(sub, f"{path} {name}")
        else:
            yield path, command

    groups = {"ssl-cert", "auth-cert", "root-cert", "ssl-policy", "http-settings"}
    groups |= {"http-listener", "frontend-port", "frontend-ip", "address-pool", "probe"}
    groups |= {"rule", "url-path-map", "redirect-config"}
    root: Any = typer.main.get_command(app)
    found = [
        (path, command)
        for name in sorted(groups)
        for path, command in leaves(root.commands[name], name)
    ]
    assert len(found) == 13 * 5 + 5  # 12 groups and url-path-map rule, 5 verbs each; ssl-policy 5
    for path, command in found:
        assert "Example: appgw " + path in (command.help or ""), path


def test_the_cli_loads_no_server_code() -> None:
    """Start-up time: the child groups must not pull in FastAPI, SQLAlchemy, uvicorn or pydantic."""
    code = (
        "import sys, appgw.cli.main; print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('fastapi', 'sqlalchemy', 'uvicorn', 'pydantic')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout
