"""Listener selection by SNI and Host, path-based rules and redirects, over real sockets."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest
import trustme
from cryptography import x509

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway, get, served_certificate
from helpers import Pfx, make_pfx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def certificates(ca: trustme.CA) -> dict[str, Pfx]:
    return {
        "a": make_pfx(ca, "a.contoso.test"),
        "b": make_pfx(ca, "b.contoso.test"),
        "wild": make_pfx(ca, "*.wild.test"),
        "basic": make_pfx(ca, "default.contoso.test"),
    }


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    server = Backend("echo").start()
    yield server
    server.stop()


def names(cert: x509.Certificate | None) -> list[str]:
    assert cert is not None, "the handshake was refused"
    return cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)


def multi_site(
    certificates: dict[str, Pfx],
    backend: Backend,
    port: int,
    *,
    v1: bool = False,
    basic: bool = True,
) -> GatewayBuilder:
    """Sites a, b, a wildcard (v2) and a basic listener on one HTTPS port; each site's settings
    override the backend path with its own prefix, so the backend's answer tells the site."""
    builder = GatewayBuilder(v1=v1).pool("pool", "127.0.0.1")
    sites: list[tuple[str, dict[str, object]]] = [
        ("a", {"host_name": "a.contoso.test", "require_sni": True}),
        ("b", {"host_name": "b.contoso.test", "require_sni": True}),
    ]
    if not v1:
        sites.append(("wild", {"host_names": ["*.wild.test"], "require_sni": True}))
    if basic:
        sites.append(("basic", {}))
    for site, listener in sites:
        pfx = certificates[site]
        builder.certificate(f"cert-{site}", pfx.b64, pfx.password)
        builder.settings(f"settings-{site}", backend.port, "Http", path=f"/{site}/")
        builder.listener(f"listener-{site}", port, "Https", certificate=f"cert-{site}", **listener)  # type: ignore[arg-type]
        builder.rule(f"rule-{site}", f"listener-{site}", pool="pool", settings=f"settings-{site}")
    return builder


def site_of(response_json: dict[str, object]) -> str:
    target = str(response_json["target"])
    return target.split("/")[1]


def test_e_v2_sites_by_sni_and_host_with_wildcard_and_basic_fallback(
    gateway: Gateway, ca: trustme.CA, certificates: dict[str, Pfx], backend: Backend
) -> None:
    port = free_port()
    gateway.apply(multi_site(certificates, backend, port).build())
    assert names(served_certificate(port, "a.contoso.test")) == ["a.contoso.test"]
    assert names(served_certificate(port, "b.contoso.test")) == ["b.contoso.test"]
    assert names(served_certificate(port, "x.y.wild.test")) == ["*.wild.test"]
    assert names(served_certificate(port, "unknown.test")) == ["default.contoso.test"]
    assert names(served_certificate(port, None)) == ["default.contoso.test"]

    for host, site in (
        ("a.contoso.test", "a"),
        ("B.Contoso.Test", "b"),
        ("shop.wild.test", "wild"),
        ("unknown.test", "basic"),
    ):
        response = get(port, host, https=True, ca=ca if site != "basic" else None, sni=host.lower())
        assert response.status_code == 200, (host, response.text)
        assert site_of(response.json()) == site, host


def test_e_v2_without_basic_listener(
    gateway: Gateway, certificates: dict[str, Pfx], backend: Backend
) -> None:
    port = free_port()
    gateway.apply(multi_site(certificates, backend, port, basic=False).build())
    # v2: an unknown or missing SNI gets the first HTTPS listener's certificate ...
    assert names(served_certificate(port, "unknown.test")) == ["a.contoso.test"]
    assert names(served_certificate(port, None)) == ["a.contoso.test"]
    # ... and a Host no listener takes is a 404.
    response = get(port, "unknown.test", https=True, sni="unknown.test")
    assert response.status_code == 404
    assert b"404" in response.content


def test_e_v1_requires_sni_when_every_listener_does(
    gateway: Gateway, ca: trustme.CA, certificates: dict[str, Pfx], backend: Backend
) -> None:
    port = free_port()
    gateway.apply(multi_site(certificates, backend, port, v1=True, basic=False).build())
    assert names(served_certificate(port, "b.contoso.test")) == ["b.contoso.test"]
    # v1 resets the connection when no site matches the SNI, or there is none.
    assert served_certificate(port, "unknown.test") is None
    assert served_certificate(port, None) is None
    response = get(port, "a.contoso.test", https=True, ca=ca)
    assert response.status_code == 200 and site_of(response.json()) == "a"


def test_e_path_based_rules_first_match_and_prefix_override(
    gateway: Gateway, backend: Backend
) -> None:
    port = free_port()
    builder = (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("default", backend.port, "Http")
        .settings("images", backend.port, "Http", path="/static/")
        .settings("api", backend.port, "Http", path="/v2/")
        .listener("listener", port, "Http")
        .path_map(
            "paths",
            ("pool", "default"),
            [
                ("images", ["/images/*"], "pool", "images"),
                ("api", ["/api*"], "pool", "api"),
            ],
        )
        .rule("rule1", "listener", path_map="paths")
    )
    gateway.apply(builder.build())
    cases = {
        "/images/logo.png?v=2": "/static/logo.png?v=2",
        "/IMAGES/a/b.png": "/static/a/b.png",
        "/api/users": "/v2/users",
        "/apiv1": "/v2/v1",
        "/other/page": "/other/page",
        "/images": "/images",  # '/images/*' needs the slash; the default takes it
    }
    for path, forwarded in cases.items():
        response = get(port, "www.contoso.test", path=path)
        assert response.status_code == 200, path
        assert response.json()["target"] == forwarded, path


def test_e_http_to_https_redirect(
    gateway: Gateway, ca: trustme.CA, certificates: dict[str, Pfx], backend: Backend
) -> None:
    https_port, http_port = free_port(), free_port()
    pfx = certificates["a"]
    builder = (
        GatewayBuilder()
        .certificate("cert", pfx.b64, pfx.password)
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port, "Http")
        .listener("https", https_port, "Https", certificate="cert", host_name="a.contoso.test")
        .listener("http", http_port, "Http", host_name="a.contoso.test")
        .redirect("toHttps", target_listener="https")
        .rule("secure", "https", pool="pool", settings="settings")
        .rule("redirect", "http", redirect="toHttps")
    )
    gateway.apply(builder.build())
    response = get(http_port, "a.contoso.test", path="/login?next=/home")
    assert response.status_code == 301
    assert response.headers["location"] == f"https://a.contoso.test:{https_port}/login?next=/home"
    followed = get(https_port, "a.contoso.test", https=True, ca=ca, path="/login?next=/home")
    assert followed.status_code == 200


def test_custom_error_page_is_fetched_and_served_for_gateway_errors(
    gateway: Gateway, backend: Backend
) -> None:
    port = free_port()
    page_url = f"http://127.0.0.1:{backend.port}/errors/502.html"
    builder = (
        GatewayBuilder()
        .pool("dead", "127.0.0.1")
        .settings("settings", free_port(), "Http")  # nothing listens there
        .listener("listener", port, "Http")
        .rule("rule1", "listener", pool="dead", settings="settings")
    )
    builder.props["httpListeners"][0]["properties"]["customErrorConfigurations"] = [
        {"statusCode": "HttpStatus502", "customErrorPageUrl": page_url}
    ]
    gateway.apply(builder.build())

    def custom_page_served() -> bool:
        response = get(port, "www.contoso.test")
        assert response.status_code == 502
        return b"/errors/502.html" in response.content

    wait_until(custom_page_served, what="the custom 502 page")


def test_gateway_tls_policy_is_enforced_on_listeners(
    gateway: Gateway, ca: trustme.CA, certificates: dict[str, Pfx], backend: Backend
) -> None:
    port = free_port()
    builder = multi_site(certificates, backend, port)
    builder.props["sslPolicy"] = {
        "policyType": "Predefined",
        "policyName": "AppGwSslPolicy20170401S",
    }
    gateway.apply(builder.build())
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="a.contoso.test") as tls,
    ):
        assert tls.version() == "TLSv1.2"  # 20170401S: TLS 1.2 only, though the client offers 1.3
    builder.props["sslPolicy"] = {
        "policyType": "Predefined",
        "policyName": "AppGwSslPolicy20220101",
    }
    gateway.apply(builder.build())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="a.contoso.test") as tls,
    ):
        assert tls.version() == "TLSv1.3"
