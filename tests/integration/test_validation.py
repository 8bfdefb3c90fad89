"""Each of Azure's validation rules refuses a PUT with its own code, names the resource and the
field, and stores nothing."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from helpers import Api, Pfx, child, clone, gateway_id, gateway_url, skeleton
from pfx_forge import Forged, b64

G = gateway_id()
Doc = dict[str, Any]


def v1(document: Doc) -> Doc:
    """The skeleton as a v1 gateway: no v2-only features."""
    props = document["properties"]
    props["sku"] = {"name": "Standard_Medium", "tier": "Standard", "capacity": 2}
    props["sslPolicy"] = {"policyType": "Predefined", "policyName": "AppGwSslPolicy20170401S"}
    props["trustedRootCertificates"] = []
    settings = child(document, "backendHttpSettingsCollection")["properties"]
    del settings["trustedRootCertificates"]
    del child(document, "requestRoutingRules")["properties"]["priority"]
    return document


def listener(document: Doc) -> Doc:
    return child(document, "httpListeners")["properties"]  # type: ignore[no-any-return]


def settings(document: Doc) -> Doc:
    return child(document, "backendHttpSettingsCollection")["properties"]  # type: ignore[no-any-return]


def rule(document: Doc) -> Doc:
    return child(document, "requestRoutingRules")["properties"]  # type: ignore[no-any-return]


def add_rule(document: Doc, name: str, priority: int | None, port: int = 8443) -> None:
    props = document["properties"]
    props["frontendPorts"].append({"name": f"port{port}", "properties": {"port": port}})
    props["httpListeners"].append(
        {
            "name": f"{name}-listener",
            "properties": {
                "frontendIPConfiguration": {
                    "id": f"{G}/frontendIPConfigurations/appGatewayFrontendIP"
                },
                "frontendPort": {"id": f"{G}/frontendPorts/port{port}"},
                "protocol": "Http",
            },
        }
    )
    new_rule: Doc = clone(child(document, "requestRoutingRules"))
    new_rule["name"] = name
    new_rule["properties"]["httpListener"] = {"id": f"{G}/httpListeners/{name}-listener"}
    if priority is None:
        new_rule["properties"].pop("priority", None)
    else:
        new_rule["properties"]["priority"] = priority
    props["requestRoutingRules"].append(new_rule)


def path_map(document: Doc, *paths: str) -> None:
    props = document["properties"]
    target = {
        "backendAddressPool": {"id": f"{G}/backendAddressPools/appGatewayBackendPool"},
        "backendHttpSettings": {
            "id": f"{G}/backendHttpSettingsCollection/appGatewayBackendHttpSettings"
        },
    }
    props["urlPathMaps"] = [
        {
            "name": "map1",
            "properties": {
                "defaultBackendAddressPool": target["backendAddressPool"],
                "defaultBackendHttpSettings": target["backendHttpSettings"],
                "pathRules": [
                    {"name": f"r{i}", "properties": {"paths": [path], **target}}
                    for i, path in enumerate(paths)
                ],
            },
        }
    ]
    rule(document).update(
        {"ruleType": "PathBasedRouting", "urlPathMap": {"id": f"{G}/urlPathMaps/map1"}}
    )
    del rule(document)["backendAddressPool"], rule(document)["backendHttpSettings"]


# (case id, mutation, expected code, resource id the message names, field the message names)
CASES: list[tuple[str, Callable[[Doc], object], str, str, str]] = [
    ("unknown top-level field", lambda d: d.update(bogus=1), "UnknownProperty", G, "bogus"),
    (
        "unknown child field",
        lambda d: listener(d).update(hostname="x.com"),
        "UnknownProperty",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostname",
    ),
    (
        "snake_case is not Azure's name",
        lambda d: settings(d).update(request_timeout=5),
        "UnknownProperty",
        f"{G}/backendHttpSettingsCollection/appGatewayBackendHttpSettings",
        "properties.request_timeout",
    ),
    (
        "bad enum value",
        lambda d: listener(d).update(protocol="Htps"),
        "InvalidPropertyValue",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.protocol",
    ),
    (
        "malformed id",
        lambda d: listener(d).update(frontendPort={"id": "frontendPorts/appGatewayFrontendPort"}),
        "LinkedInvalidPropertyId",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.frontendPort",
    ),
    (
        "dangling reference",
        lambda d: listener(d).update(frontendPort={"id": f"{G}/frontendPorts/nope"}),
        "InvalidResourceReference",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.frontendPort",
    ),
    (
        "reference into another gateway",
        lambda d: listener(d).update(
            frontendPort={"id": f"{gateway_id('other')}/frontendPorts/appGatewayFrontendPort"}
        ),
        "InvalidResourceReference",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.frontendPort",
    ),
    (
        "reference into the wrong collection",
        lambda d: listener(d).update(
            frontendPort={"id": f"{G}/backendAddressPools/appGatewayBackendPool"}
        ),
        "InvalidResourceReferenceType",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.frontendPort",
    ),
    (
        "duplicate child names (case-insensitive)",
        lambda d: d["properties"]["frontendPorts"].append(
            {"name": "APPGATEWAYFRONTENDPORT", "properties": {"port": 80}}
        ),
        "DuplicateResourceName",
        G,
        "properties.frontendPorts",
    ),
    (
        "bad child name",
        lambda d: child(d, "probes").update(name="bad name!"),
        "InvalidResourceName",
        f"{G}/probes/bad name!",
        "name",
    ),
    (
        "https listener without certificate",
        lambda d: listener(d).pop("sslCertificate"),
        "ApplicationGatewayHttpsListenerRequiresSslCertificate",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.sslCertificate",
    ),
    (
        "hostName with hostNames",
        lambda d: listener(d).update(hostNames=["a.contoso.com"]),
        "ApplicationGatewayHostNameAndHostNamesBothSet",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostNames",
    ),
    (
        "too many host names",
        lambda d: listener(d).update(
            hostName=None, hostNames=[f"h{i}.contoso.com" for i in range(6)]
        ),
        "ApplicationGatewayTooManyHostNames",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostNames",
    ),
    (
        "three stars",
        lambda d: listener(d).update(hostName=None, hostNames=["*.contoso.*.*.com"]),
        "ApplicationGatewayInvalidHostName",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostNames[0]",
    ),
    (
        "five wildcard characters",
        lambda d: listener(d).update(hostName=None, hostNames=["????.contoso.*"]),
        "ApplicationGatewayInvalidHostName",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostNames[0]",
    ),
    (
        "star next to question mark",
        lambda d: listener(d).update(hostName=None, hostNames=["*?.contoso.com"]),
        "ApplicationGatewayInvalidHostName",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostNames[0]",
    ),
    (
        "wildcard in hostName",
        lambda d: listener(d).update(hostName="*.contoso.com"),
        "ApplicationGatewayInvalidHostName",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostName",
    ),
    (
        "two protocols on one port",
        lambda d: d["properties"]["httpListeners"].append(
            {
                "name": "plain",
                "properties": {
                    **clone(listener(d)),
                    "protocol": "Http",
                    "sslCertificate": None,
                    "hostName": "other.contoso.com",
                },
            }
        ),
        "ApplicationGatewayFrontendPortProtocolConflict",
        f"{G}/httpListeners/plain",
        "properties.protocol",
    ),
    (
        "priority on some rules only",
        lambda d: add_rule(d, "rule2", None),
        "ApplicationGatewayRulePriorityAllOrNone",
        f"{G}/requestRoutingRules/rule2",
        "properties.priority",
    ),
    (
        "priority out of range",
        lambda d: rule(d).update(priority=20001),
        "ApplicationGatewayRulePriorityOutOfRange",
        f"{G}/requestRoutingRules/rule1",
        "properties.priority",
    ),
    (
        "duplicate priority",
        lambda d: add_rule(d, "rule2", 100),
        "ApplicationGatewayRulePriorityDuplicate",
        f"{G}/requestRoutingRules/rule2",
        "properties.priority",
    ),
    (
        "trusted root on v1",
        lambda d: v1(d)["properties"]["trustedRootCertificates"].append(
            clone(skeleton_for_cases["properties"]["trustedRootCertificates"][0])
        ),
        "ApplicationGatewayTrustedRootCertificateRequiresV2Sku",
        f"{G}/trustedRootCertificates/backendRoot",
        "",
    ),
    (
        "authentication certificate on v2",
        lambda d: d["properties"]["authenticationCertificates"].append(
            {"name": "leaf", "properties": {"data": skeleton_for_cases["_root"]}}
        ),
        "ApplicationGatewayAuthenticationCertificateRequiresV1Sku",
        f"{G}/authenticationCertificates/leaf",
        "",
    ),
    (
        "wildcard host names on v1",
        lambda d: listener(v1(d)).update(hostName=None, hostNames=["*.contoso.com"]),
        "ApplicationGatewayHostNamesRequireV2Sku",
        f"{G}/httpListeners/appGatewayHttpListener",
        "properties.hostNames",
    ),
    (
        "2022 policy on v1",
        lambda d: v1(d)["properties"].update(
            sslPolicy={"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101"}
        ),
        "ApplicationGatewaySslPolicyRequiresV2Sku",
        G,
        "properties.sslPolicy.policyName",
    ),
    (
        "retired TLS 1.0 policy",
        lambda d: d["properties"].update(
            sslPolicy={"policyType": "Predefined", "policyName": "AppGwSslPolicy20150501"}
        ),
        "ApplicationGatewayDeprecatedTlsVersionUsedInSslPolicy",
        G,
        "properties.sslPolicy.policyName",
    ),
    (
        "custom policy with TLS 1.3 suite",
        lambda d: d["properties"].update(
            sslPolicy={
                "policyType": "Custom",
                "minProtocolVersion": "TLSv1_2",
                "cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
            }
        ),
        "ApplicationGatewayInvalidSslPolicy",
        G,
        "properties.sslPolicy.cipherSuites[1]",
    ),
    (
        "frontend port over the v2 range",
        lambda d: child(d, "frontendPorts")["properties"].update(port=65200),
        "ApplicationGatewayPortOutOfRange",
        f"{G}/frontendPorts/appGatewayFrontendPort",
        "properties.port",
    ),
    (
        "backend port zero",
        lambda d: settings(d).update(port=0),
        "ApplicationGatewayPortOutOfRange",
        f"{G}/backendHttpSettingsCollection/appGatewayBackendHttpSettings",
        "properties.port",
    ),
    (
        "probe protocol differs from settings",
        lambda d: child(d, "probes")["properties"].update(protocol="Http"),
        "ApplicationGatewayProbeProtocolMismatch",
        f"{G}/backendHttpSettingsCollection/appGatewayBackendHttpSettings",
        "properties.probe",
    ),
    (
        "path pattern with star in the middle",
        lambda d: path_map(d, "/images/*/x"),
        "ApplicationGatewayInvalidPathPattern",
        f"{G}/urlPathMaps/map1/pathRules/r0",
        "properties.paths[0]",
    ),
    (
        "path pattern without slash",
        lambda d: path_map(d, "images/*"),
        "ApplicationGatewayInvalidPathPattern",
        f"{G}/urlPathMaps/map1/pathRules/r0",
        "properties.paths[0]",
    ),
    (
        "v1 path pattern star without slash",
        lambda d: path_map(v1(d), "/images*"),
        "ApplicationGatewayInvalidPathPattern",
        f"{G}/urlPathMaps/map1/pathRules/r0",
        "properties.paths[0]",
    ),
    (
        "too many backend targets",
        lambda d: child(d, "backendAddressPools")["properties"].update(
            backendAddresses=[{"ipAddress": f"10.{i // 250}.{i % 250}.1"} for i in range(1201)]
        ),
        "ApplicationGatewayLimitExceeded",
        f"{G}/backendAddressPools/appGatewayBackendPool",
        "properties.backendAddresses",
    ),
    (
        "too many frontend ports",
        lambda d: d["properties"]["frontendPorts"].extend(
            {"name": f"p{i}", "properties": {"port": 1000 + i}} for i in range(100)
        ),
        "ApplicationGatewayLimitExceeded",
        G,
        "properties.frontendPorts",
    ),
    (
        "request timeout out of range",
        lambda d: settings(d).update(requestTimeout=0),
        "InvalidPropertyValue",
        f"{G}/backendHttpSettingsCollection/appGatewayBackendHttpSettings",
        "properties.requestTimeout",
    ),
    (
        "sku tier mismatch",
        lambda d: d["properties"]["sku"].update(tier="WAF_v2"),
        "ApplicationGatewaySkuTierMismatch",
        G,
        "properties.sku.tier",
    ),
    (
        "WAF SKU without a WAF configuration",
        lambda d: d["properties"]["sku"].update(name="WAF_v2", tier="WAF_v2"),
        "ApplicationGatewayWafConfigurationRequired",
        G,
        "properties.webApplicationFirewallConfiguration",
    ),
    (
        "key vault reference",
        lambda d: child(d, "sslCertificates")["properties"].update(
            data=None, keyVaultSecretId="https://kv.vault.azure.net/secrets/c"
        ),
        "FeatureNotSupported",
        f"{G}/sslCertificates/appgwSslCert",
        "properties.keyVaultSecretId",
    ),
    (
        "redirect with both targets",
        lambda d: d["properties"]["redirectConfigurations"].append(
            {
                "name": "r",
                "properties": {
                    "redirectType": "Permanent",
                    "targetUrl": "https://x.contoso.com",
                    "targetListener": {"id": f"{G}/httpListeners/appGatewayHttpListener"},
                },
            }
        ),
        "ApplicationGatewayRedirectTargetInvalid",
        f"{G}/redirectConfigurations/r",
        "properties",
    ),
    (
        "new certificate without data",
        lambda d: child(d, "sslCertificates")["properties"].update(data=None),
        "ApplicationGatewaySslCertificateDataMissing",
        f"{G}/sslCertificates/appgwSslCert",
        "properties.data",
    ),
    (
        "wrong PFX password",
        lambda d: child(d, "sslCertificates")["properties"].update(password="wrong"),
        "ApplicationGatewaySslCertificateInvalidPassword",
        f"{G}/sslCertificates/appgwSslCert",
        "properties.password",
    ),
    (
        "garbage PFX",
        lambda d: child(d, "sslCertificates")["properties"].update(
            data=base64.b64encode(b"not a pfx at all" * 20).decode()
        ),
        "ApplicationGatewaySslCertificateInvalidData",
        f"{G}/sslCertificates/appgwSslCert",
        "properties.data",
    ),
    (
        "PFX over 16 KB",
        lambda d: child(d, "sslCertificates")["properties"].update(
            data=base64.b64encode(b"\0" * (16 * 1024 + 1)).decode()
        ),
        "ApplicationGatewaySslCertificateTooLarge",
        f"{G}/sslCertificates/appgwSslCert",
        "properties.data",
    ),
    (
        "garbage trusted root",
        lambda d: child(d, "trustedRootCertificates")["properties"].update(data="Z2FyYmFnZQ=="),
        "ApplicationGatewayTrustedRootCertificateInvalidData",
        f"{G}/trustedRootCertificates/backendRoot",
        "properties.data",
    ),
    (
        "listener used by two rules",
        lambda d: d["properties"]["requestRoutingRules"].append(
            {"name": "rule2", "properties": {**clone(rule(d)), "priority": 200}}
        ),
        "ApplicationGatewayListenerUsedByMultipleRules",
        f"{G}/requestRoutingRules/rule2",
        "properties.httpListener",
    ),
    (
        "TCP listeners are not implemented",
        lambda d: d["properties"].update(listeners=[{"name": "tcp"}]),
        "FeatureNotSupported",
        G,
        "properties.listeners",
    ),
]

skeleton_for_cases: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("mutate", "code", "resource", "field"),
    [pytest.param(m, c, r, f, id=name) for name, m, c, r, f in CASES],
)
def test_each_rule_has_its_own_code(
    api: Api,
    pfx: Pfx,
    root_cer: str,
    mutate: Callable[[Doc], object],
    code: str,
    resource: str,
    field: str,
) -> None:
    document = skeleton(pfx, root_cer)
    skeleton_for_cases.update(clone(document), _root=root_cer)
    mutate(document)
    response = api.client.put(gateway_url(), json=document)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    codes = [detail["code"] for detail in error["details"]]
    assert codes == [code], error
    assert error["code"] == code
    assert f"'{resource}'" in error["message"], error["message"]
    if field:
        assert f"property '{field}'" in error["message"], error["message"]
    assert pfx.password not in response.text
    assert api.client.get(gateway_url()).status_code == 404, "a refused PUT stored something"


def test_the_unmodified_documents_are_valid(api: Api, pfx: Pfx, root_cer: str) -> None:
    """The baselines the cases mutate are themselves accepted (so each case fails for its rule)."""
    assert (
        api.client.put(gateway_url("v2"), json=skeleton(pfx, root_cer, "v2", 8001)).status_code
        == 201
    )
    document = v1(skeleton(pfx, root_cer, "v1", 8002))
    assert api.client.put(gateway_url("v1"), json=document).status_code == 201
    mapped = skeleton(pfx, root_cer, "mapped", 8003)
    G_mapped = gateway_id("mapped")
    path_map(mapped, "/images/*", "/api*")
    for path_rule in mapped["properties"]["urlPathMaps"][0]["properties"]["pathRules"]:
        for key in ("backendAddressPool", "backendHttpSettings"):
            path_rule["properties"][key]["id"] = path_rule["properties"][key]["id"].replace(
                G, G_mapped
            )
    mapped_map = mapped["properties"]["urlPathMaps"][0]["properties"]
    for key in ("defaultBackendAddressPool", "defaultBackendHttpSettings"):
        mapped_map[key]["id"] = mapped_map[key]["id"].replace(G, G_mapped)
    rule(mapped)["urlPathMap"]["id"] = f"{G_mapped}/urlPathMaps/map1"
    response = api.client.put(gateway_url("mapped"), json=mapped)
    assert response.status_code == 201, response.text
    wildcard = skeleton(pfx, root_cer, "wild", 8004)
    listener(wildcard).update(hostName=None, hostNames=["*.contoso.*", "w??.contoso*.edu.*"])
    assert api.client.put(gateway_url("wild"), json=wildcard).status_code == 201


def test_several_problems_are_reported_together(api: Api, pfx: Pfx, root_cer: str) -> None:
    document = skeleton(pfx, root_cer)
    rule(document).update(priority=0)
    listener(document).update(hostName="*.bad")
    error = api.client.put(gateway_url(), json=document).json()["error"]
    assert error["code"] == "MultipleErrorsOccurred"
    assert {d["code"] for d in error["details"]} == {
        "ApplicationGatewayRulePriorityOutOfRange",
        "ApplicationGatewayInvalidHostName",
    }


@pytest.fixture(scope="module")
def expired_pfx() -> Pfx:
    ca = trustme.CA()
    now = datetime.now(UTC)
    issued = ca.issue_cert(
        "old.contoso.com", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    pem = issued.private_key_and_cert_chain_pem.bytes()
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(pem)
    data = pkcs12.serialize_key_and_certificates(
        b"old",
        key,
        cert,
        None,
        serialization.BestAvailableEncryption(b"pw123456"),  # type: ignore[arg-type]
    )
    return Pfx(base64.b64encode(data).decode(), "pw123456", b"", cert)


def test_expired_listener_certificate_is_refused(
    api: Api, pfx: Pfx, root_cer: str, expired_pfx: Pfx
) -> None:
    document = skeleton(pfx, root_cer)
    child(document, "sslCertificates")["properties"].update(
        data=expired_pfx.b64, password=expired_pfx.password
    )
    error = api.client.put(gateway_url(), json=document).json()["error"]
    assert error["code"] == "ApplicationGatewaySslCertificateExpired"
    assert "appgwSslCert" in error["message"]


def test_pfx_without_private_key_is_refused(api: Api, pfx: Pfx, root_cer: str) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"nokey", None, None, [pfx.leaf], serialization.BestAvailableEncryption(b"pw123456")
    )
    document = skeleton(pfx, root_cer)
    child(document, "sslCertificates")["properties"].update(
        data=base64.b64encode(data).decode(), password="pw123456"
    )
    error = api.client.put(gateway_url(), json=document).json()["error"]
    assert error["code"] == "ApplicationGatewaySslCertificateMissingPrivateKey"


def test_a_pfx_asking_for_too_many_iterations_is_refused_before_decrypting(
    api: Api, pfx: Pfx, root_cer: str
) -> None:
    """Issue 12: OpenSSL would spend ~3 s holding the GIL on this key bag's count."""
    hostile = Forged.of(base64.b64decode(pfx.b64), pfx.password).set_key_iterations(20_000_000)
    document = skeleton(pfx, root_cer)
    child(document, "sslCertificates")["properties"]["data"] = b64(hostile.der())

    started = time.process_time()
    response = api.client.put(gateway_url(), json=document)
    elapsed = time.process_time() - started

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ApplicationGatewaySslCertificateIterationCountTooHigh"
    assert f"'{G}/sslCertificates/appgwSslCert'" in error["message"]
    assert "property 'properties.data'" in error["message"]
    assert "20,000,000" in error["message"] and "at most 100,000" in error["message"]
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert pfx.password not in response.text
    assert api.client.get(gateway_url()).status_code == 404
