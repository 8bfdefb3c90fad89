"""End-to-end TLS as in Azure's article "Configure end-to-end TLS by using Application Gateway",
configured only through the REST API: real sockets, real handshakes, generated certificates."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway, backend_presenting, get, issued, self_signed_leaf
from helpers import Pfx, cer_b64, make_pfx

pytestmark = pytest.mark.slow

SITE = "www.contoso.test"
BACKEND_NAME = "backend.contoso.test"


@pytest.fixture(scope="module")
def frontend_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def backend_ca() -> trustme.CA:
    return trustme.CA(organization_name="Backend Root")


@pytest.fixture(scope="module")
def listener_pfx(frontend_ca: trustme.CA) -> Pfx:
    return make_pfx(frontend_ca, SITE)


@pytest.fixture(scope="module")
def good_backend(backend_ca: trustme.CA) -> Iterator[Backend]:
    backend = backend_presenting("good", *issued(backend_ca, BACKEND_NAME))
    yield backend
    backend.stop()


def https_gateway(
    pfx: Pfx, backend_port: int, *, port: int, v1: bool = False, **settings: object
) -> GatewayBuilder:
    builder = GatewayBuilder(v1=v1).certificate("appGatewaySslCert", pfx.b64, pfx.password)
    return (
        builder.pool("appGatewayBackendPool", "127.0.0.1")
        .settings("appGatewayBackendHttpSettings", backend_port, "Https", **settings)
        .listener("appGatewayHttpListener", port, "Https", certificate="appGatewaySslCert")
        .rule(
            "rule1",
            "appGatewayHttpListener",
            pool="appGatewayBackendPool",
            settings="appGatewayBackendHttpSettings",
        )
    )


def test_a_v2_https_listener_reencrypts_to_a_backend_trusted_by_its_root(
    gateway: Gateway,
    frontend_ca: trustme.CA,
    backend_ca: trustme.CA,
    listener_pfx: Pfx,
    good_backend: Backend,
) -> None:
    port = free_port()
    builder = https_gateway(
        listener_pfx,
        good_backend.port,
        port=port,
        hostName=BACKEND_NAME,
        trustedRootCertificates=["backendRoot"],
    ).trusted_root("backendRoot", cer_b64(backend_ca))
    gateway.apply(builder.build())
    response = get(port, SITE, https=True, ca=frontend_ca, path="/hello?x=1")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["tls"] is True and seen["sni"] == BACKEND_NAME
    assert seen["target"] == "/hello?x=1"
    headers = seen["headers"]
    assert headers["host"] == BACKEND_NAME
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-port"] == str(port)
    assert headers["x-forwarded-for"].startswith("127.0.0.1:")
    assert headers["x-original-host"] == SITE
    assert headers["x-original-url"] == "/hello?x=1"
    trace = headers["x-appgw-trace-id"]
    assert len(trace) == 32 and int(trace, 16) >= 0

    access_log = gateway.server.log_path.parent / "data" / "access.log"
    wait_until(lambda: trace in access_log.read_text(), what="the access log line")
    record = next(json.loads(line) for line in access_log.read_text().splitlines() if trace in line)
    properties = record["properties"]
    assert record["listenerName"] == "appGatewayHttpListener" and record["ruleName"] == "rule1"
    assert record["backendPoolName"] == "appGatewayBackendPool"
    assert record["backendSettingName"] == "appGatewayBackendHttpSettings"
    assert properties["httpStatus"] == 200 and properties["serverStatus"] == "200"
    assert properties["sslEnabled"] == "on" and properties["sslProtocol"].startswith("TLSv1.")
    assert properties["serverRouted"] == f"127.0.0.1:{good_backend.port}"
    assert properties["requestUri"] == "/hello" and properties["host"] == SITE
    assert properties["error_info"] == "ERRORINFO_NO_ERROR"


def test_b_http_listener_switched_to_https_without_restart(
    gateway: Gateway, frontend_ca: trustme.CA, listener_pfx: Pfx
) -> None:
    plain = Backend("plain").start()
    try:
        port = free_port()
        builder = (
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
        )
        gateway.apply(builder.build())
        assert get(port, SITE).json()["backend"] == "plain"
        pid = gateway.server.process.pid
        # The article's step: the listener becomes HTTPS with an uploaded PFX.
        builder.certificate("appGatewaySslCert", listener_pfx.b64, listener_pfx.password)
        listener = builder.props["httpListeners"][0]["properties"]
        listener["protocol"] = "Https"
        listener["sslCertificate"] = builder.ref("sslCertificates", "appGatewaySslCert")
        gateway.apply(builder.build())
        response = get(port, SITE, https=True, ca=frontend_ca)
        assert response.status_code == 200 and response.json()["backend"] == "plain"
        assert gateway.server.process.pid == pid and gateway.server.process.poll() is None
        # Plain HTTP on what is now an HTTPS port: a readable 400, as Azure answers.
        refused = get(port, SITE)
        assert refused.status_code == 400
    finally:
        plain.stop()


def test_c_v1_allow_lists_the_backends_exact_leaf(
    gateway: Gateway, frontend_ca: trustme.CA, listener_pfx: Pfx
) -> None:
    chain, key, leaf_der = self_signed_leaf(BACKEND_NAME)
    allowed = backend_presenting("allowed", chain, key)
    # Another certificate with the same CN: v1 compares the certificate itself, not its name.
    impostor_chain, impostor_key, _ = self_signed_leaf(BACKEND_NAME)
    impostor = backend_presenting("impostor", impostor_chain, impostor_key)
    try:
        port = free_port()
        builder = https_gateway(
            listener_pfx,
            allowed.port,
            port=port,
            v1=True,
            authenticationCertificates=["backendLeaf"],
        ).authentication_certificate("backendLeaf", base64.b64encode(leaf_der).decode())
        gateway.apply(builder.build())
        response = get(port, SITE, https=True, ca=frontend_ca)
        assert response.status_code == 200 and response.json()["backend"] == "allowed"
        # v1 sends no SNI to an IP member.
        assert response.json()["sni"] is None

        builder.props["backendHttpSettingsCollection"][0]["properties"]["port"] = impostor.port
        gateway.apply(builder.build())
        refused = get(port, SITE, https=True, ca=frontend_ca)
        assert refused.status_code == 502
        assert impostor.seen == [], "a request reached a backend that is not allow-listed"
        wait_until(lambda: "LeafNotAllowListed" in gateway.log(), what="the error log line")
    finally:
        allowed.stop()
        impostor.stop()


def _expired(ca: trustme.CA) -> tuple[list[bytes], bytes]:
    now = dt.datetime.now(dt.UTC)
    return issued(
        ca,
        BACKEND_NAME,
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )


def _leaf_only(ca: trustme.CA) -> tuple[list[bytes], bytes]:
    intermediate = ca.create_child_ca()
    chain, key = issued(intermediate, BACKEND_NAME)
    return chain[:1], key  # the server "forgets" its intermediate


def _other_root(_ca: trustme.CA) -> tuple[list[bytes], bytes]:
    # leaf + intermediate of a root the gateway was not given
    return issued(trustme.CA(organization_name="Other Root").create_child_ca(), BACKEND_NAME)


def _wrong_name(ca: trustme.CA) -> tuple[list[bytes], bytes]:
    return issued(ca, "other.contoso.test")


@pytest.mark.parametrize(
    ("make_chain", "settings", "check", "passes"),
    [
        pytest.param(_other_root, {}, "TrustedRoot", False, id="wrong root"),
        pytest.param(_wrong_name, {}, "NameMismatch", False, id="name mismatch"),
        pytest.param(_leaf_only, {}, "IntermediateMissing", False, id="missing intermediate"),
        pytest.param(_expired, {}, "Expired", False, id="expired"),
        pytest.param(
            _wrong_name, {"validateSNI": False}, None, True, id="validateSNI false relaxes the name"
        ),
        pytest.param(
            _other_root,
            {"validateSNI": False},
            "TrustedRoot",
            False,
            id="validateSNI false keeps the chain check",
        ),
        pytest.param(
            _other_root,
            {"validateCertChainAndExpiry": False},
            None,
            True,
            id="validateCertChainAndExpiry false relaxes the chain",
        ),
        pytest.param(
            _expired,
            {"validateCertChainAndExpiry": False},
            None,
            True,
            id="validateCertChainAndExpiry false relaxes expiry",
        ),
        pytest.param(
            _wrong_name,
            {"validateCertChainAndExpiry": False},
            "NameMismatch",
            False,
            id="validateCertChainAndExpiry false keeps the name check",
        ),
    ],
)
def test_d_v2_backend_certificate_checks(
    gateway: Gateway,
    frontend_ca: trustme.CA,
    backend_ca: trustme.CA,
    listener_pfx: Pfx,
    make_chain: object,
    settings: dict[str, object],
    check: str | None,
    passes: bool,
) -> None:
    chain, key = make_chain(backend_ca)  # type: ignore[operator]
    backend = backend_presenting("under-test", chain, key)
    try:
        port = free_port()
        builder = https_gateway(
            listener_pfx,
            backend.port,
            port=port,
            hostName=BACKEND_NAME,
            trustedRootCertificates=["backendRoot"],
            **settings,
        ).trusted_root("backendRoot", cer_b64(backend_ca))
        # The reason is logged by the health probe or by traffic, whichever meets it first.
        before = gateway.log()
        gateway.apply(builder.build())
        response = get(port, SITE, https=True, ca=frontend_ca)
        if passes:
            assert response.status_code == 200, response.text
            assert response.json()["backend"] == "under-test"
            return
        assert response.status_code == 502
        assert backend.seen == [], "a request was sent over a connection that failed its check"
        wait_until(lambda: len(gateway.log()) > len(before), what="the error log line")
        wait_until(
            lambda: any(
                f"check {check}" in line and f"127.0.0.1:{backend.port}" in line
                for line in gateway.log()[len(before) :].splitlines()
            ),
            what=f"an error line naming check {check}",
        )
        line = next(
            line for line in gateway.log()[len(before) :].splitlines() if f"check {check}" in line
        )
        assert "settings 'appGatewayBackendHttpSettings'" in line
        leaf = x509.load_pem_x509_certificate(chain[0])
        assert leaf.fingerprint(hashes.SHA256()).hex().upper() in line
        assert leaf.subject.rfc4514_string() in line
    finally:
        backend.stop()


def test_d_self_signed_non_ca_leaf_fails_like_a_missing_intermediate(
    gateway: Gateway, frontend_ca: trustme.CA, listener_pfx: Pfx
) -> None:
    chain, key, leaf_der = self_signed_leaf(BACKEND_NAME)
    backend = backend_presenting("self-signed", chain, key)
    try:
        port = free_port()
        # Even uploaded as "trusted root", a non-CA certificate is a leaf to Azure.
        builder = https_gateway(
            listener_pfx,
            backend.port,
            port=port,
            hostName=BACKEND_NAME,
            trustedRootCertificates=["selfSigned"],
        ).trusted_root("selfSigned", base64.b64encode(leaf_der).decode())
        # The reason is logged by the health probe or by traffic, whichever meets it first.
        before = len(gateway.log())
        gateway.apply(builder.build())
        assert get(port, SITE, https=True, ca=frontend_ca).status_code == 502
        assert backend.seen == []
        wait_until(
            lambda: "check IntermediateMissing" in gateway.log()[before:], what="the error line"
        )
    finally:
        backend.stop()


def test_d_well_known_ca_mode_refuses_a_private_ca(
    gateway: Gateway, frontend_ca: trustme.CA, backend_ca: trustme.CA, listener_pfx: Pfx
) -> None:
    chain, key = issued(backend_ca, BACKEND_NAME)
    # The server sends its full chain, private root included.
    backend = backend_presenting("private", [*chain, backend_ca.cert_pem.bytes()], key)
    try:
        port = free_port()
        # No trusted root on the settings: "Use well known CA certificate" = Yes.
        builder = https_gateway(listener_pfx, backend.port, port=port, hostName=BACKEND_NAME)
        # The reason is logged by the health probe or by traffic, whichever meets it first.
        before = len(gateway.log())
        gateway.apply(builder.build())
        assert get(port, SITE, https=True, ca=frontend_ca).status_code == 502
        assert backend.seen == []
        wait_until(
            lambda: "check NotIssuedByWellKnownCA" in gateway.log()[before:], what="the error line"
        )
    finally:
        backend.stop()


def test_fqdn_member_gives_host_and_sni_with_pick_host_name_from_backend_address(
    gateway: Gateway, frontend_ca: trustme.CA, backend_ca: trustme.CA, listener_pfx: Pfx
) -> None:
    backend = backend_presenting("fqdn", *issued(backend_ca, "localhost"))
    try:
        port = free_port()
        builder = https_gateway(
            listener_pfx,
            backend.port,
            port=port,
            pickHostNameFromBackendAddress=True,
            trustedRootCertificates=["backendRoot"],
        ).trusted_root("backendRoot", cer_b64(backend_ca))
        builder.props["backendAddressPools"][0]["properties"]["backendAddresses"] = [
            {"fqdn": "localhost"}
        ]
        gateway.apply(builder.build())
        response = get(port, SITE, https=True, ca=frontend_ca)
        assert response.status_code == 200, response.text
        seen = response.json()
        assert seen["sni"] == "localhost" and seen["headers"]["host"] == "localhost"
    finally:
        backend.stop()
