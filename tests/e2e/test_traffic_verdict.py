"""Issue 11's repro, as a new user following Azure's article would meet it: a Standard_v2
gateway, an IP backend target, an HTTPS listener for www.contoso.com, backend settings on HTTPS
that trust the uploaded root, and a backend certificate for www.fabrikam.com, with no host name
override (also with "pick host name from backend target"). Traffic sends the request's Host as
SNI and fails NameMismatch; Backend health must say so, never plain Healthy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway, backend_presenting, get, issued
from e2e.test_health import health, servers
from helpers import Pfx, cer_b64, make_pfx

pytestmark = pytest.mark.slow

SITE = "www.contoso.com"
BACKEND_NAME = "www.fabrikam.com"
POOL, SETTINGS = "appGatewayBackendPool", "appGatewayBackendHttpSettings"


@pytest.fixture(scope="module")
def frontend_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def backend_ca() -> trustme.CA:
    return trustme.CA(organization_name="Fabrikam Root")


@pytest.fixture(scope="module")
def fabrikam(backend_ca: trustme.CA) -> Iterator[Backend]:
    backend = backend_presenting("fabrikam", *issued(backend_ca, BACKEND_NAME))
    yield backend
    backend.stop()


def article_gateway(
    pfx: Pfx, backend: Backend, root: str, port: int, **settings: Any
) -> dict[str, Any]:
    return (
        GatewayBuilder()
        .certificate("appGatewaySslCert", pfx.b64, pfx.password)
        .trusted_root("fabrikamRoot", root)
        .pool(POOL, "127.0.0.1")
        .settings(
            SETTINGS, backend.port, "Https", trustedRootCertificates=["fabrikamRoot"], **settings
        )
        .listener("contosoListener", port, "Https", certificate="appGatewaySslCert", host_name=SITE)
        .rule("rule1", "contosoListener", pool=POOL, settings=SETTINGS, priority=100)
        .build()
    )


def server_entry(gateway: Gateway) -> dict[str, Any]:
    return servers(health(gateway))[(POOL, SETTINGS, "127.0.0.1")]


@pytest.mark.parametrize("pick_host_name", [False, True])
def test_backend_health_tells_why_every_request_fails(
    gateway: Gateway,
    frontend_ca: trustme.CA,
    backend_ca: trustme.CA,
    fabrikam: Backend,
    pick_host_name: bool,
) -> None:
    port = free_port()
    pfx = make_pfx(frontend_ca, SITE)
    extra = {"pickHostNameFromBackendAddress": True} if pick_host_name else {}
    gateway.apply(article_gateway(pfx, fabrikam, cer_b64(backend_ca), port, **extra))

    # Before any request: the probe passes (no SNI, no name for an IP), but the report already
    # knows traffic will verify www.contoso.com, which the certificate does not cover.
    wait_until(lambda: "lastProbeTime" in server_entry(gateway)["appgwProbeDetails"])
    entry = server_entry(gateway)
    assert entry["health"] == "Partial", entry
    warnings = " ".join(entry["appgwProbeDetails"]["warnings"])
    assert "request's Host" in warnings and SITE in warnings and BACKEND_NAME in warnings
    assert "NameMismatch" in warnings
    assert entry["appgwProbeDetails"]["traffic"]["sni"] == "(the request's Host)"

    for _ in range(3):
        response = get(port, SITE, https=True, ca=frontend_ca, path="/traffic")
        assert response.status_code == 502, response.text
    reached = [seen for seen in fabrikam.seen if seen.target == "/traffic"]
    assert reached == [], "no request byte reaches a backend that failed verification"

    # Traffic's own verdict, reported by the workers within a second or two.
    def traffic_reported() -> bool:
        details = server_entry(gateway)["appgwProbeDetails"]["traffic"]
        return details.get("failedRequests", 0) >= 3

    wait_until(traffic_reported, timeout=15, what="traffic refusals in Backend health")
    entry = server_entry(gateway)
    traffic = entry["appgwProbeDetails"]["traffic"]
    assert entry["health"] == "Partial"
    assert traffic["failedCheck"] == "NameMismatch"
    assert traffic["failedSni"] == SITE and traffic["certificateNames"] == [BACKEND_NAME]
    expected = (
        f"requests in the last 5 minutes failed: NameMismatch, SNI {SITE}, "
        f"certificate names {BACKEND_NAME}"
    )
    assert expected in entry["healthProbeLog"], entry["healthProbeLog"]
    assert "host name" in entry["healthProbeLog"], "the fix is named"


def test_the_fix_named_by_backend_health_makes_it_healthy(
    gateway: Gateway, frontend_ca: trustme.CA, backend_ca: trustme.CA, fabrikam: Backend
) -> None:
    port = free_port()
    pfx = make_pfx(frontend_ca, SITE)
    gateway.apply(article_gateway(pfx, fabrikam, cer_b64(backend_ca), port, hostName=BACKEND_NAME))
    response = get(port, SITE, https=True, ca=frontend_ca)
    assert response.status_code == 200, response.text
    assert response.json()["sni"] == BACKEND_NAME
    wait_until(lambda: "lastProbeTime" in server_entry(gateway)["appgwProbeDetails"])
    entry = server_entry(gateway)
    assert entry["health"] == "Healthy", entry
    assert entry["appgwProbeDetails"]["warnings"] == []
