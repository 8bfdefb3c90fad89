"""`appgw create`, `appgw update` (incl. az's --set/--add/--remove) and the on-demand probe of
`show-backend-health`: the real executable against a real `appgw serve`."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from backends import Backend, free_port
from helpers import PFX_PASSWORD, TOKEN, Pfx, ServeProcess, run_cli

pytestmark = pytest.mark.slow

SUBSCRIPTION = "sub-cli"


def cli(server: ServeProcess, tmp_path: Path, *args: str, stdin: str = "") -> Result:
    done = run_cli(
        *args,
        config=tmp_path / "config.json",
        stdin=stdin,
        env={
            "APPGW_SERVER": server.base_url,
            "APPGW_TOKEN": TOKEN,
            "APPGW_SUBSCRIPTION": SUBSCRIPTION,
        },
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self) -> object:
        return json.loads(self.stdout)


def stored(server: ServeProcess, group: str, name: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/"
        f"Microsoft.Network/applicationGateways/{name}",
        params={"api-version": "2024-05-01"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def test_create_builds_azures_default_gateway(
    server: ServeProcess, tmp_path: Path, pfx: Pfx
) -> None:
    pfx_file = tmp_path / "site.pfx"
    pfx_file.write_bytes(base64.b64decode(pfx.b64))
    port = free_port()
    created = cli(
        server, tmp_path,
        "create", "-g", "rg-create", "-n", "gw1", "--sku", "standard_v2", "--priority", "100",
        "--servers", "10.0.0.4", "app.contoso.com",
        "--cert-file", str(pfx_file), "--private-ip-address", "127.0.0.1",
        "--frontend-port", str(port), "--http-settings-port", "8443",
        "--http-settings-protocol", "https",
        "--connection-draining-timeout", "30", "--tags", "team=web", "env",
        "--cert-password-stdin", stdin=PFX_PASSWORD + "\n",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    assert PFX_PASSWORD not in created.stdout
    properties = stored(server, "rg-create", "gw1").json()["properties"]
    assert properties["sku"] == {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 2}
    assert properties["frontendPorts"] == [
        {
            **properties["frontendPorts"][0],
            "name": "appGatewayFrontendPort",
            "properties": {**properties["frontendPorts"][0]["properties"], "port": port},
        }
    ]
    listener = properties["httpListeners"][0]
    assert listener["name"] == "appGatewayHttpListener"
    assert listener["properties"]["protocol"] == "Https"
    assert listener["properties"]["sslCertificate"]["id"].endswith("/sslCertificates/gw1SslCert")
    pool = properties["backendAddressPools"][0]["properties"]["backendAddresses"]
    assert pool == [{"ipAddress": "10.0.0.4"}, {"fqdn": "app.contoso.com"}]
    settings = properties["backendHttpSettingsCollection"][0]
    assert settings["name"] == "appGatewayBackendHttpSettings"
    assert settings["properties"]["protocol"] == "Https"
    assert settings["properties"]["connectionDraining"] == {
        "enabled": True,
        "drainTimeoutInSec": 30,
    }
    rule = properties["requestRoutingRules"][0]
    assert rule["name"] == "rule1" and rule["properties"]["priority"] == 100

    again = cli(server, tmp_path, "create", "-g", "rg-create", "-n", "gw1")
    assert again.code == 1
    assert "(PreconditionFailed)" in again.stderr and "already exists" in again.stderr

    # A v1 gateway: no priority written (az's rule), HTTP on port 80 without a certificate.
    v1 = cli(
        server, tmp_path, "create", "-g", "rg-create", "-n", "gw-v1", "--priority", "5",
        "--private-ip-address", "127.0.0.2", "--frontend-port", str(free_port()),
        "--query", "requestRoutingRules[0]",
    )  # fmt: skip
    assert v1.code == 0, v1.stderr
    assert "priority" not in v1.json()  # type: ignore[operator]
    assert "--priority applies to v2 SKUs only" in v1.stderr


def test_create_refuses_bad_input_and_stores_nothing(
    server: ServeProcess, tmp_path: Path, pfx: Pfx
) -> None:
    pfx_file = tmp_path / "site.pfx"
    pfx_file.write_bytes(base64.b64decode(pfx.b64))
    common = ("create", "-g", "rg-bad", "-n", "gw", "--private-ip-address", "127.0.0.3")
    wrong_password = cli(
        server, tmp_path, *common, "--cert-file", str(pfx_file), "--cert-password", "nope"
    )
    assert wrong_password.code == 1
    assert f"--cert-file {pfx_file}:" in wrong_password.stderr
    assert "password" in wrong_password.stderr.lower()
    missing = cli(server, tmp_path, *common, "--cert-file", str(tmp_path / "absent.pfx"))
    assert missing.code == 1
    assert f"--cert-file {tmp_path / 'absent.pfx'}: no such file" in missing.stderr
    bad_sku = cli(server, tmp_path, *common, "--sku", "Premium")
    assert bad_sku.code == 2 and "--sku 'Premium': use one of Standard_Small" in bad_sku.stderr
    path_based = cli(server, tmp_path, *common, "--routing-rule-type", "PathBasedRouting")
    assert path_based.code == 2 and "url-path-map create" in path_based.stderr
    assert stored(server, "rg-bad", "gw").status_code == 404


def test_update_and_generic_arguments(server: ServeProcess, tmp_path: Path) -> None:
    common = ("-g", "rg-update", "-n", "gw")
    created = cli(
        server, tmp_path, "create", *common, "--sku", "Standard_v2", "--servers", "10.0.0.4",
        "--private-ip-address", "127.0.0.4", "--frontend-port", str(free_port()),
    )  # fmt: skip
    assert created.code == 0, created.stderr
    updated = cli(
        server, tmp_path, "update", *common, "--capacity", "3", "--tags", "a=b", "c",
        "--set", "sslPolicy.policyType=Predefined", "sslPolicy.policyName=AppGwSslPolicy20220101S",
        "--add", "backendAddressPools[0].backendAddresses", "fqdn=app2.contoso.com",
        "--custom-error-pages", "HttpStatus502=https://errors.contoso.com/502.html",
        "-o", "json",
    )  # fmt: skip
    assert updated.code == 0, updated.stderr
    document = stored(server, "rg-update", "gw").json()
    properties = document["properties"]
    assert document["tags"] == {"a": "b", "c": ""}
    assert properties["sku"]["capacity"] == 3
    assert properties["sslPolicy"] == {
        "policyType": "Predefined",
        "policyName": "AppGwSslPolicy20220101S",
    }
    assert properties["backendAddressPools"][0]["properties"]["backendAddresses"] == [
        {"ipAddress": "10.0.0.4"},
        {"fqdn": "app2.contoso.com"},
    ]
    assert properties["customErrorConfigurations"] == [
        {"statusCode": "HttpStatus502", "customErrorPageUrl": "https://errors.contoso.com/502.html"}
    ]

    removed = cli(
        server, tmp_path, "update", *common,
        "--remove", "backendAddressPools[0].backendAddresses", "0", "--remove", "sslPolicy",
        "--query", "backendAddressPools[0].backendAddresses",
    )  # fmt: skip
    assert removed.code == 0, removed.stderr
    assert removed.json() == [{"fqdn": "app2.contoso.com"}]
    assert "sslPolicy" not in stored(server, "rg-update", "gw").json()["properties"]

    etag = stored(server, "rg-update", "gw").json()["etag"]
    for bad, message in (
        (("--set", "capacity"), "--set 'capacity': expected PATH=VALUE"),
        (("--remove", "backendAddressPools[0].backendAddresses", "7"), "no such index"),
        (("--add", "sku", "x=1"), "--add sku: not a list"),
        (("--set", "frontendPorts[4].port=1"), "no item [4] (the list has 1 items)"),
    ):
        result = cli(server, tmp_path, "update", *common, *bad)
        assert result.code == 2, (bad, result.stderr)
        assert message in result.stderr, (bad, result.stderr)
    unknown = cli(server, tmp_path, "update", *common, "--set", "frontendPortz=1")
    assert unknown.code == 1 and "frontendPortz" in unknown.stderr
    assert stored(server, "rg-update", "gw").json()["etag"] == etag  # nothing was stored


def test_http2_switch(server: ServeProcess, tmp_path: Path) -> None:
    """--http2 Enabled/Disabled on create and update is enableHttp2; another value is refused
    naming the flag, before anything is sent."""
    common = ("-g", "rg-http2", "-n", "gw")
    created = cli(
        server, tmp_path, "create", *common, "--sku", "Standard_v2", "--servers", "10.0.0.4",
        "--private-ip-address", "127.0.0.5", "--frontend-port", str(free_port()),
        "--http2", "Disabled",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    assert stored(server, "rg-http2", "gw").json()["properties"]["enableHttp2"] is False

    enabled = cli(server, tmp_path, "update", *common, "--http2", "Enabled")
    assert enabled.code == 0, enabled.stderr
    shown = cli(server, tmp_path, "show", *common, "--query", "enableHttp2")
    assert shown.code == 0 and shown.json() is True, shown.stderr

    disabled = cli(server, tmp_path, "update", *common, "--http2", "disabled", "--query",
                   "enableHttp2")  # fmt: skip
    assert disabled.code == 0 and disabled.json() is False, disabled.stderr
    document = stored(server, "rg-http2", "gw").json()
    assert document["properties"]["enableHttp2"] is False

    bad = cli(server, tmp_path, "update", *common, "--http2", "maybe")
    assert bad.code == 2 and "--http2 'maybe': use one of Enabled, Disabled" in bad.stderr
    assert stored(server, "rg-http2", "gw").json()["etag"] == document["etag"]


def test_show_backend_health_on_demand(server: ServeProcess, tmp_path: Path) -> None:
    backend = Backend("on-demand").start()
    try:
        common = ("-g", "rg-probe", "-n", "gw")
        created = cli(
            server, tmp_path, "create", *common, "--servers", "127.0.0.1",
            "--http-settings-port", str(backend.port), "--private-ip-address", "127.0.0.5",
            "--frontend-port", str(free_port()),
        )  # fmt: skip
        assert created.code == 0, created.stderr
        result = cli(
            server, tmp_path, "show-backend-health", *common,
            "--address-pool", "appGatewayBackendPool",
            "--http-settings", "appGatewayBackendHttpSettings",
            "--protocol", "Http", "--host", "probe.contoso.com", "--path", "/healthz",
            "--timeout", "5", "--match-status-codes", "200-299", "201",
            "--query", "backendHealthHttpSettings.servers[0].[address, health]",
        )  # fmt: skip
        assert result.code == 0, result.stderr
        assert result.json() == ["127.0.0.1", "Healthy"]
        # The monitor's own probes of "/" reach the backend too.
        seen = next(request for request in backend.seen if request.target == "/healthz")
        assert seen.headers["host"] == "probe.contoso.com"
        unknown = cli(
            server, tmp_path, "show-backend-health", *common, "--address-pool", "nope",
            "--http-settings", "appGatewayBackendHttpSettings", "--protocol", "Http",
        )  # fmt: skip
        assert unknown.code == 1 and "nope" in unknown.stderr
    finally:
        backend.stop()
