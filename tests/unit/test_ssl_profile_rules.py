"""Azure's rules for SSL profiles and trusted client certificates, on a PUT's model."""

from __future__ import annotations

from typing import Any

import pytest

from appgw.model.ids import GatewayId
from appgw.model.resource import ApplicationGateway
from appgw.model.validate import validate_gateway
from builders import GatewayBuilder

GID = GatewayId("sub1", "rg1", "appgw")
RETIRED = "AppGwSslPolicy20150501"  # TLS 1.0: retired by Azure


def document(*, v1: bool = False, protocol: str = "Https", **profile: Any) -> dict[str, Any]:
    builder = GatewayBuilder(v1=v1).pool("pool", "127.0.0.1").settings("settings", 8080)
    builder.certificate("cert", "AAAA", "x")
    certificate = "cert" if protocol == "Https" else None
    builder.listener("listener", 8443, protocol, certificate=certificate)
    builder.rule("rule", "listener", pool="pool", settings="settings")
    built = builder.build()
    properties = built["properties"]
    properties["trustedClientCertificates"] = [{"name": "clients", "properties": {"data": "AAAA"}}]
    properties["sslProfiles"] = [
        {
            "name": "mutual",
            "properties": {
                "trustedClientCertificates": [builder.ref("trustedClientCertificates", "clients")],
                **profile,
            },
        }
    ]
    properties["httpListeners"][0]["properties"]["sslProfile"] = builder.ref(
        "sslProfiles", "mutual"
    )
    return built


def codes(built: dict[str, Any]) -> set[str]:
    found = validate_gateway(ApplicationGateway.model_validate(built), GID)
    return {f"{d.code} {d.field}" for d in found}


def test_a_profile_on_an_https_listener_passes() -> None:
    assert codes(document(clientAuthConfiguration={"verifyClientCertIssuerDN": True})) == set()


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (
            document(v1=True),
            "ApplicationGatewaySslProfileRequiresV2Sku properties",
        ),
        (
            document(protocol="Http"),
            "ApplicationGatewaySslProfileOnHttpListener properties.sslProfile",
        ),
        (
            document(trustedClientCertificates=[{"id": f"{GID}/trustedClientCertificates/nope"}]),
            "InvalidResourceReference properties.trustedClientCertificates[0]",
        ),
        (
            document(
                trustedClientCertificates=[],
                clientAuthConfiguration={"verifyClientRevocation": "OCSP"},
            ),
            "ApplicationGatewaySslProfileClientAuthWithoutTrustedCertificates "
            "properties.clientAuthConfiguration",
        ),
        (
            document(sslPolicy={"policyType": "Predefined", "policyName": RETIRED}),
            "ApplicationGatewayDeprecatedTlsVersionUsedInSslPolicy properties.sslPolicy.policyName",
        ),
    ],
    ids=["v1", "http-listener", "unknown-ca", "ocsp-without-cas", "retired-policy"],
)
def test_refusals_name_the_field(built: dict[str, Any], expected: str) -> None:
    found = codes(built)
    assert expected in found, found
