"""The real `appgw import` / `appgw export` against a real `appgw serve`: Azure's JSON and ARM
templates in, ids rewritten, certificate secrets demanded by name, and a lossless round trip."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives.serialization import pkcs7

from backends import free_port
from helpers import TOKEN, Pfx, ServeProcess, gateway_id, run_cli

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data" / "azure"
AZ_SHOW = DATA / "az-show-v2-e2e-tls.json"
TEMPLATE = DATA / "arm-template-appgw-v2.json"
TEMPLATE_PARAMETERS = DATA / "arm-template-appgw-v2.parameters.json"
SOURCE_GATEWAY = (
    "/subscriptions/8f3c2d1e-5b7a-4c9e-a1d2-3e4f5a6b7c8d/resourceGroups/contoso-prod-rg/providers/"
    "Microsoft.Network/applicationGateways/contoso-appgw"
)
SUB = "sub-import"


def az_show_document() -> dict[str, Any]:
    """The az-show fixture with its frontend ports (80 and 443 in Azure) moved to free ports:
    an imported gateway starts listening at once."""
    document: dict[str, Any] = json.loads(AZ_SHOW.read_text())
    for port in document["frontendPorts"]:
        port["port"] = free_port()
    return document


@pytest.fixture
def az_show(tmp_path: Path) -> Path:
    path = tmp_path / AZ_SHOW.name
    path.write_text(json.dumps(az_show_document()))
    return path


@pytest.fixture(scope="module")
def api(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        params={"api-version": "2024-05-01"},
    ) as client:
        yield client


@pytest.fixture
def pfx_file(tmp_path: Path, pfx: Pfx) -> Path:
    path = tmp_path / "www.pfx"
    path.write_bytes(base64.b64decode(pfx.b64))
    return path


def appgw(server: ServeProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = run_cli(
        *args,
        config=Path("/nonexistent/appgw-config.json"),
        stdin=stdin,
        env={"APPGW_SERVER": server.base_url, "APPGW_TOKEN": TOKEN, "APPGW_SUBSCRIPTION": SUB},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ids(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["id"]] if isinstance(value.get("id"), str) else []
        return found + [i for key, item in value.items() if key != "id" for i in ids(item)]
    if isinstance(value, list):
        return [i for item in value for i in ids(item)]
    return []


def without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(item, keys) for item in value]
    return value


def test_import_az_show_output(
    az_show: Path, server: ServeProcess, api: httpx.Client, pfx: Pfx, pfx_file: Path
) -> None:
    target = gateway_id("web", "imported", SUB)
    missing = appgw(server, "import", str(az_show), "-g", "imported", "-n", "web")
    assert missing.returncode == 1
    assert str(az_show) in missing.stderr and "'contoso-www-cert'" in missing.stderr
    assert "--ssl-cert contoso-www-cert=FILE.pfx" in missing.stderr
    assert api.get(target).status_code == 404

    args = ("import", str(az_show), "-g", "imported", "-n", "web")
    secret = ("--ssl-cert", f"contoso-www-cert={pfx_file}", "--ssl-cert-password-stdin")
    done = appgw(server, *args, *secret, stdin=pfx.password + "\n")
    assert done.returncode == 0, done.stderr
    assert pfx.password not in done.stdout + done.stderr
    view = api.get(target).json()
    assert json.loads(done.stdout)["id"] == view["id"] == target
    gateway_refs = [i for i in ids(view["properties"]) if "/applicationGateways/" in i]
    assert gateway_refs and all(i.startswith(target + "/") for i in gateway_refs)
    assert SOURCE_GATEWAY.casefold() not in json.dumps(view).casefold()
    props = view["properties"]
    assert props["sku"] == {"name": "Standard_v2", "tier": "Standard_v2", "family": "Generation_1"}
    assert props["autoscaleConfiguration"] == {"minCapacity": 2, "maxCapacity": 10}
    assert view["tags"] == {"environment": "production", "costCenter": "web-042"}
    assert view["zones"] == ["1", "2", "3"]
    listener = props["httpListeners"][0]["properties"]
    assert listener["hostName"] == "www.contoso.com"
    assert listener["sslCertificate"]["id"] == f"{target}/sslCertificates/contoso-www-cert"
    settings = props["backendHttpSettingsCollection"][0]["properties"]
    assert settings["trustedRootCertificates"] == [
        {"id": f"{target}/trustedRootCertificates/contoso-backend-root"}
    ]
    assert settings["probe"]["id"] == f"{target}/probes/https-health"
    redirect = props["redirectConfigurations"][0]["properties"]
    assert redirect["targetListener"]["id"] == f"{target}/httpListeners/https-listener"
    # External resources (subnet, public IP) keep the ids Azure gave them.
    assert props["gatewayIPConfigurations"][0]["properties"]["subnet"]["id"].startswith(
        "/subscriptions/8f3c2d1e-5b7a-4c9e-a1d2-3e4f5a6b7c8d/resourceGroups/contoso-network-rg/"
    )
    # The server read publicCertData off the PFX given, not the file's copy.
    public = props["sslCertificates"][0]["properties"]["publicCertData"]
    assert pfx.leaf in pkcs7.load_der_pkcs7_certificates(base64.b64decode(public))

    again = appgw(server, *args, *secret, stdin=pfx.password + "\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert "--overwrite" in again.stderr
    replaced = appgw(server, *args, *secret, "--overwrite", stdin=pfx.password + "\n")
    assert replaced.returncode == 0, replaced.stderr
    assert api.get(target).json()["etag"] != view["etag"]
    assert api.delete(target).is_success


def test_unknown_fields_are_dropped_with_a_warning(
    server: ServeProcess, tmp_path: Path, pfx: Pfx, pfx_file: Path
) -> None:
    document = az_show_document()
    document["frontendPorts"][0]["futureSetting"] = True
    document["someNewFeature"] = {"enabled": False}
    pool, settings = (
        document["backendAddressPools"][0],
        document["backendHttpSettingsCollection"][0],
    )
    document["urlPathMaps"] = [  # flattened as az prints it, path rules too
        {
            "id": f"{SOURCE_GATEWAY}/urlPathMaps/paths",
            "name": "paths",
            "defaultBackendAddressPool": {"id": pool["id"], "resourceGroup": "contoso-prod-rg"},
            "defaultBackendHttpSettings": {"id": settings["id"]},
            "pathRules": [
                {
                    "id": f"{SOURCE_GATEWAY}/urlPathMaps/paths/pathRules/api",
                    "name": "api",
                    "paths": ["/api/*"],
                    "backendAddressPool": {"id": pool["id"]},
                    "backendHttpSettings": {"id": settings["id"]},
                    "provisioningState": "Succeeded",
                    "resourceGroup": "contoso-prod-rg",
                }
            ],
            "provisioningState": "Succeeded",
            "resourceGroup": "contoso-prod-rg",
        }
    ]
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    shown = appgw(
        server, "import", str(changed), "-g", "dry", "--dry-run",
        "--ssl-cert", f"contoso-www-cert={pfx_file}", "--ssl-cert-password-stdin",
        stdin=pfx.password + "\n",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "dropped properties.someNewFeature" in shown.stderr
    assert "dropped properties.frontendPorts[port_443].properties.futureSetting" in shown.stderr
    printed = json.loads(shown.stdout)
    target = gateway_id("contoso-appgw", "dry", SUB)
    assert printed["properties"]["urlPathMaps"] == [
        {
            "name": "paths",
            "properties": {
                "defaultBackendAddressPool": {
                    "id": f"{target}/backendAddressPools/contoso-backend-pool"
                },
                "defaultBackendHttpSettings": {
                    "id": f"{target}/backendHttpSettingsCollection/https-settings"
                },
                "pathRules": [
                    {
                        "name": "api",
                        "properties": {
                            "paths": ["/api/*"],
                            "backendAddressPool": {
                                "id": f"{target}/backendAddressPools/contoso-backend-pool"
                            },
                            "backendHttpSettings": {
                                "id": f"{target}/backendHttpSettingsCollection/https-settings"
                            },
                        },
                    }
                ],
            },
        }
    ]
    assert printed["properties"]["sslCertificates"][0]["properties"]["password"] == "(hidden)"
    assert pfx.password not in shown.stdout and pfx.b64[:64] not in shown.stdout


def test_import_arm_template(
    server: ServeProcess, api: httpx.Client, tmp_path: Path, pfx: Pfx
) -> None:
    https_port = free_port()
    parameters = json.loads(TEMPLATE_PARAMETERS.read_text())
    parameters["parameters"]["certData"] = {"value": pfx.b64}
    parameters["parameters"]["certPassword"] = {"value": pfx.password}
    parameters_file = tmp_path / "parameters.json"
    parameters_file.write_text(json.dumps(parameters))
    args = ("import", str(TEMPLATE), "-g", "tpl", "--location", "northeurope")
    given = ("-p", f"@{parameters_file}", "-p", f"httpsPort={https_port}", "-p", "environment=test")

    done = appgw(server, *args, *given)
    assert done.returncode == 0, done.stderr
    assert "Microsoft.Network/virtualNetworks" in done.stderr  # not deployed, and it says so
    target = gateway_id("contoso-web-gw", "tpl", SUB)
    view = api.get(target).json()
    props = view["properties"]
    assert view["location"] == "northeurope"
    assert view["tags"] == {"environment": "test", "displayName": "[not an expression]"}
    assert props["frontendPorts"][0]["properties"]["port"] == https_port
    assert props["backendAddressPools"][0]["properties"]["backendAddresses"] == [
        {"ipAddress": "10.20.1.4"},
        {"ipAddress": "10.20.1.5"},
    ]
    listener = props["httpListeners"][0]
    assert listener["name"] == "test-https-listener"
    assert listener["properties"]["frontendPort"]["id"] == f"{target}/frontendPorts/port_https"
    rule = props["requestRoutingRules"][0]["properties"]
    assert rule["httpListener"]["id"] == f"{target}/httpListeners/test-https-listener"
    assert rule["backendHttpSettings"]["id"] == (
        f"{target}/backendHttpSettingsCollection/myHTTPSetting"
    )
    assert props["gatewayIPConfigurations"][0]["properties"]["subnet"]["id"] == (
        f"/subscriptions/{SUB}/resourceGroups/tpl/providers/Microsoft.Network/virtualNetworks/"
        "contoso-web-gw-vnet/subnets/myAGSubnet"
    )
    assert api.delete(target).is_success

    no_location = appgw(server, "import", str(TEMPLATE), "-g", "tpl", *given)
    assert no_location.returncode == 2 and "needs --location" in no_location.stderr
    unset = appgw(server, *args, "-p", f"httpsPort={https_port}")
    assert unset.returncode == 2
    assert "parameter 'certData' has no value" in unset.stderr and str(TEMPLATE) in unset.stderr
    wrong_type = appgw(server, *args, *given, "-p", "httpsPort=https")
    assert wrong_type.returncode == 2 and "'httpsPort'" in wrong_type.stderr

    template = json.loads(TEMPLATE.read_text())
    port = template["resources"][2]["properties"]["frontendPorts"][0]
    port["name"] = "[uniqueString(resourceGroup().id)]"
    unknown_file = tmp_path / "unknown.json"
    unknown_file.write_text(json.dumps(template))
    unknown = appgw(server, "import", str(unknown_file), "-g", "tpl", "--location", "x", *given)
    assert unknown.returncode == 2
    assert "'uniqueString'" in unknown.stderr
    assert "resources[2].properties.frontendPorts[0].name" in unknown.stderr
    assert api.get(f"/subscriptions/{SUB}/resourceGroups/tpl/providers/"
                   "Microsoft.Network/applicationGateways").json()["value"] == []  # fmt: skip


def test_bad_files(server: ServeProcess, tmp_path: Path) -> None:
    not_json = tmp_path / "gateway.json"
    not_json.write_text("{'name': 'gw'}")
    wrong_shape = tmp_path / "vnet.json"
    wrong_shape.write_text(json.dumps({"name": "vnet", "addressSpace": {}}))
    bad_ports = tmp_path / "ports.json"
    bad_ports.write_text(
        json.dumps({"name": "gw", "location": "x", "properties": {"frontendPorts": "80"}})
    )
    a_list = tmp_path / "list.json"
    a_list.write_text("[{}, {}]")
    for path, expected in [
        (not_json, "not valid JSON"),
        (wrong_shape, "neither an application gateway"),
        (a_list, "a list of 2 item(s)"),
        (bad_ports, "not a valid application gateway:\n  - (InvalidPropertyValue)"),
        (tmp_path / "absent.json", "cannot read it"),
    ]:
        result = appgw(server, "import", str(path), "-g", "bad")
        assert result.returncode == 2, result.stderr
        assert f"appgw: {path}: " in result.stderr and expected in result.stderr


def with_rewrites_and_mutual_tls(document: dict[str, Any]) -> dict[str, Any]:
    """The az-show gateway with a rewrite set on its HTTPS rule and an SSL profile (trusted
    client CA, issuer DN, OCSP, its own policy) on its HTTPS listener, in az's flat shape."""
    gid, rg = document["id"], document["resourceGroup"]

    def ref(collection: str, name: str) -> dict[str, str]:
        return {"id": f"{gid}/{collection}/{name}", "resourceGroup": rg}

    clients = trustme.CA(organization_name="Contoso Clients")
    document["trustedClientCertificates"] = [
        {"name": "contoso-clients", "data": base64.b64encode(clients.cert_pem.bytes()).decode()}
    ]
    document["sslProfiles"] = [
        {
            "name": "partners",
            "trustedClientCertificates": [ref("trustedClientCertificates", "contoso-clients")],
            "clientAuthConfiguration": {
                "verifyClientCertIssuerDN": True,
                "verifyClientRevocation": "OCSP",
            },
            "sslPolicy": {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101S"},
        }
    ]
    document["rewriteRuleSets"] = [
        {
            "name": "security-headers",
            "rewriteRules": [
                {
                    "name": "hsts",
                    "ruleSequence": 100,
                    "conditions": [{"variable": "http_req_X-Debug", "pattern": ".+",
                                    "ignoreCase": True, "negate": True}],
                    "actionSet": {
                        "requestHeaderConfigurations": [
                            {"headerName": "X-Client-Cert",
                             "headerValue": "{var_client_certificate}"}
                        ],
                        "responseHeaderConfigurations": [
                            {"headerName": "Strict-Transport-Security",
                             "headerValue": "max-age=31536000"},
                            {"headerName": "Server", "headerValue": ""},
                        ],
                    },
                }
            ],
        }
    ]  # fmt: skip
    listener = next(item for item in document["httpListeners"] if item["protocol"] == "Https")
    listener["sslProfile"] = ref("sslProfiles", "partners")
    rule = next(item for item in document["requestRoutingRules"] if item["name"] == "https-rule")
    rule["rewriteRuleSet"] = ref("rewriteRuleSets", "security-headers")
    return document


def test_export_round_trip(
    server: ServeProcess, api: httpx.Client, tmp_path: Path, pfx: Pfx, pfx_file: Path
) -> None:
    """Everything survives export and import: also rewrite sets, SSL profiles and HTTP2."""
    az_show = tmp_path / "az-show-with-features.json"
    source = with_rewrites_and_mutual_tls(az_show_document())
    assert source["enableHttp2"] is False, "the fixture as Azure printed it"
    source["enableHttp2"] = True
    az_show.write_text(json.dumps(source))
    secret = ("--ssl-cert", f"contoso-www-cert={pfx_file}", "--ssl-cert-password-stdin")
    original = gateway_id("original", "trip", SUB)
    first = appgw(server, "import", str(az_show), "-g", "trip", "-n", "original", *secret,
                  stdin=pfx.password + "\n")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert api.get(original).json()["properties"]["enableHttp2"] is True

    exported = tmp_path / "exported.json"
    done = appgw(server, "export", "-g", "trip", "-n", "original", "--file", str(exported))
    assert done.returncode == 0, done.stderr
    assert "--ssl-cert for contoso-www-cert" in done.stderr
    text = exported.read_text()
    for cert in json.loads(text)["properties"]["sslCertificates"]:
        assert not {"data", "password", "keyVaultSecretId"} & set(cert["properties"])
    assert pfx.password not in text and pfx.b64[:64] not in text
    assert base64.b64encode(pfx.key_der).decode()[:64] not in text
    kept = appgw(server, "export", "-g", "trip", "-n", "original", "--file", str(exported))
    assert kept.returncode == 2 and "--force" in kept.stderr and exported.read_text() == text
    as_template = tmp_path / "template.json"
    assert appgw(server, "export", "-g", "trip", "-n", "original", "--template",
                 "-f", str(as_template)).returncode == 0  # fmt: skip
    assert api.delete(original).is_success  # its ports are free for the copies

    exported_document = json.loads(text)["properties"]
    assert exported_document["enableHttp2"] is True
    assert exported_document["rewriteRuleSets"][0]["name"] == "security-headers"
    assert (
        exported_document["sslProfiles"][0]["properties"]["clientAuthConfiguration"][
            "verifyClientRevocation"
        ]
        == "OCSP"
    )

    def same_as_original(name: str) -> None:
        copy = api.get(gateway_id(name, "trip", SUB)).json()
        expected = json.loads(text.replace(original, gateway_id(name, "trip", SUB)))
        expected["name"] = name
        ignored = {"etag", "resourceGuid"}
        assert without(copy, ignored) == without(expected, ignored)
        assert api.delete(gateway_id(name, "trip", SUB)).is_success

    copied = appgw(server, "import", str(exported), "-g", "trip", "-n", "copy", *secret,
                   stdin=pfx.password + "\n")  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    same_as_original("copy")
    from_template = appgw(
        server, "import", str(as_template), "-g", "trip", "-p", "applicationGatewayName=copy2",
        *secret, stdin=pfx.password + "\n",
    )  # fmt: skip
    assert from_template.returncode == 0, from_template.stderr
    same_as_original("copy2")


def test_help_has_examples(server: ServeProcess) -> None:
    for command in ("import", "export"):
        shown = appgw(server, command, "--help")
        assert shown.returncode == 0 and "Example: appgw " + command in shown.stdout


def test_refusals_store_nothing(
    az_show: Path, server: ServeProcess, api: httpx.Client, tmp_path: Path, pfx: Pfx, pfx_file: Path
) -> None:
    group = f"/subscriptions/{SUB}/resourceGroups/refused/providers/Microsoft.Network/"
    secret = ("--ssl-cert", f"contoso-www-cert={pfx_file}", "--ssl-cert-password-stdin")
    document = az_show_document()
    document["sslCertificates"][0]["keyVaultSecretId"] = (
        "https://contoso-kv.vault.azure.net/secrets/www-contoso-com"
    )
    document["trustedRootCertificates"][0].pop("data")
    document["trustedRootCertificates"][0]["keyVaultSecretId"] = (
        "https://contoso-kv.vault.azure.net/secrets/backend-root"
    )
    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps(document))
    listed = appgw(server, "import", str(vault), "-g", "refused")
    assert listed.returncode == 1 and "2 certificate(s) lack their secret" in listed.stderr
    assert "Key Vault (https://contoso-kv.vault.azure.net/secrets/www-contoso-com)" in (
        listed.stderr
    )
    assert "--trusted-root-cert contoso-backend-root=FILE.cer" in listed.stderr

    stranger = appgw(server, "import", str(az_show), "-g", "refused", *secret,
                     "--ssl-cert", f"nope={pfx_file}", stdin="x\nx\n")  # fmt: skip
    assert stranger.returncode == 2 and "no sslCertificates entry named nope" in stranger.stderr

    wrong_password = appgw(server, "import", str(az_show), "-g", "refused", *secret,
                           stdin="not-the-password\n")  # fmt: skip
    assert wrong_password.returncode == 1
    assert "contoso-www-cert" in wrong_password.stderr and "password" in wrong_password.stderr

    # A feature appgw does not implement is refused by the server, never silently dropped.
    document = az_show_document()
    document["privateLinkConfigurations"] = [
        {
            "name": "contoso-private-link",
            "ipConfigurations": [
                {
                    "name": "private-link-ip",
                    "privateIPAllocationMethod": "Dynamic",
                    "primary": True,
                }
            ],
        }
    ]
    rewrites = tmp_path / "rewrites.json"
    rewrites.write_text(json.dumps(document))
    checked = appgw(server, "import", str(rewrites), "-g", "refused", "--dry-run", *secret,
                    stdin=pfx.password + "\n")  # fmt: skip
    assert checked.returncode == 1 and "the server would refuse" in checked.stderr
    assert "Private Link" in checked.stderr
    refused = appgw(server, "import", str(rewrites), "-g", "refused", *secret,
                    stdin=pfx.password + "\n")  # fmt: skip
    assert refused.returncode == 1
    assert "Private Link" in refused.stderr and "FeatureNotSupported" in refused.stderr
    assert api.get(group + "applicationGateways").json()["value"] == []
