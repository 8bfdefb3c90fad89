"""SSL profiles with mutual TLS, over real TLS handshakes: clients with a good certificate,
one from another CA, an expired one, one from the right root but the wrong issuer, and none;
a multi-site port where a site without client authentication cannot be used to reach one with
it; the client certificate passed to the backend by a rewrite rule."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from helpers import SUB, TOKEN, Pfx, gateway_url, make_pfx, run_cli

pytestmark = pytest.mark.slow

AZ_SHOW = Path(__file__).parents[1] / "data" / "azure" / "az-show-v2-rewrites.json"
SITE = "secure.contoso.test"
OPEN_SITE = "open.contoso.test"


@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_root() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Clients Root")


@pytest.fixture(scope="module")
def client_issuer(client_root: trustme.CA) -> trustme.CA:
    return client_root.create_child_ca()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    server = Backend("app").start()
    yield server
    server.stop()


def upload(*cas: trustme.CA) -> str:
    """A trusted client certificate upload: the CAs' PEM in one file, base64 (as ARM's data)."""
    return base64.b64encode(b"".join(ca.cert_pem.bytes() for ca in cas)).decode()


def gateway_document(
    server_ca: trustme.CA,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
    backend: Backend,
    port: int,
    *,
    issuer_dn: bool = True,
) -> dict[str, Any]:
    # One certificate for both sites: only the SSL profile tells their TLS contexts apart.
    shared: Pfx = make_pfx(server_ca, SITE, OPEN_SITE)
    builder = (
        GatewayBuilder()
        .certificate("shared", shared.b64, shared.password)
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port)
        .listener("secure", port, "Https", certificate="shared", host_name=SITE, require_sni=True)
        .listener(
            "open", port, "Https", certificate="shared", host_name=OPEN_SITE, require_sni=True
        )
        .rewrite_set(
            "client-cert",
            [
                {
                    "name": "pass-the-certificate",
                    "ruleSequence": 100,
                    "actionSet": {
                        "requestHeaderConfigurations": [
                            {
                                "headerName": "X-Client-Subject",
                                "headerValue": "{var_client_certificate_subject}",
                            },
                            {
                                "headerName": "X-Client-Verify",
                                "headerValue": "{var_client_certificate_verification}",
                            },
                            {
                                "headerName": "X-Client-Cert",
                                "headerValue": "{var_client_certificate}",
                            },
                        ]
                    },
                }
            ],
        )
        .rule("secure", "secure", pool="pool", settings="settings", rewrite_set="client-cert")
        .rule("open", "open", pool="pool", settings="settings")
    )
    document = builder.build()
    properties = document["properties"]
    properties["trustedClientCertificates"] = [
        {"name": "contoso-clients", "properties": {"data": upload(client_root, client_issuer)}}
    ]
    properties["sslProfiles"] = [
        {
            "name": "mutual",
            "properties": {
                "trustedClientCertificates": [
                    builder.ref("trustedClientCertificates", "contoso-clients")
                ],
                "clientAuthConfiguration": {"verifyClientCertIssuerDN": issuer_dn},
            },
        }
    ]
    properties["httpListeners"][0]["properties"]["sslProfile"] = builder.ref(
        "sslProfiles", "mutual"
    )
    return document


def request(
    port: int,
    server_ca: trustme.CA,
    *,
    client: trustme.LeafCert | None = None,
    sni: str = SITE,
    host: str = SITE,
) -> tuple[int, dict[str, Any] | None, bytes]:
    """One GET over a fresh TLS connection: (status, the backend's JSON or None, raw answer);
    status 0 when the handshake failed."""
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=sni)
        except (ssl.SSLError, ConnectionError):
            return 0, None, b""
        with tls:
            target = _targets.send()
            tls.sendall(
                f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    status = int(answer.split(b" ", 2)[1])
    body = answer.split(b"\r\n\r\n", 1)[1]
    seen = json.loads(body) if status == 200 else None
    return status, seen, answer


def _numbered() -> Iterator[str]:
    """Request targets, each unique: an access log line is found by its request (two workers
    append to the log, each on its own flush timer, so the file's order is not the requests')."""
    number = 0
    while True:
        number += 1
        yield f"/x?request={number}"


class _Targets:
    def __init__(self) -> None:
        self.numbers = _numbered()
        self.last = ""

    def send(self) -> str:
        self.last = next(self.numbers)
        return self.last


_targets = _Targets()


def forwarded(backend: Backend) -> list[Any]:
    """What client requests reached `backend` (its health probes aside)."""
    return [
        seen
        for seen in backend.seen
        if not seen.headers.get("user-agent", "").startswith("appgw-health-probe")
    ]


def last_line_for(gateway: Gateway, listener: str) -> dict[str, Any]:
    """The access log's line of the latest request() sent, on `listener`."""
    path = gateway.server.log_path.parent / "data" / "access.log"
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        found[:] = [
            line
            for line in lines
            if line["listenerName"] == listener
            and line["properties"]["originalRequestUriWithArgs"] == _targets.last
        ]
        return bool(found)

    wait_until(logged, what=f"the access log line of {_targets.last}")
    return found[-1]["properties"]


@pytest.fixture(scope="module")
def mtls_port(
    gateway: Gateway,
    server_ca: trustme.CA,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
    backend: Backend,
) -> int:
    port = free_port()
    gateway.apply(gateway_document(server_ca, client_root, client_issuer, backend, port))
    return port


def test_a_client_with_a_good_certificate_is_served_and_its_identity_reaches_the_backend(
    gateway: Gateway, mtls_port: int, server_ca: trustme.CA, client_issuer: trustme.CA
) -> None:
    client = client_issuer.issue_cert("alice@contoso.test", common_name="alice")
    status, seen, _ = request(mtls_port, server_ca, client=client)
    assert status == 200 and seen is not None
    assert seen["headers"]["x-client-verify"] == "SUCCESS"
    assert "CN=alice" in seen["headers"]["x-client-subject"]
    # The certificate itself, PEM on one line: the backend can read it back.
    sent = (
        seen["headers"]["x-client-cert"]
        .replace(" ", "\n")
        .replace("BEGIN\nCERTIFICATE", "BEGIN CERTIFICATE")
        .replace("END\nCERTIFICATE", "END CERTIFICATE")
    )
    assert x509.load_pem_x509_certificate(sent.encode()) == x509.load_pem_x509_certificate(
        client.cert_chain_pems[0].bytes()
    )
    logged = last_line_for(gateway, "secure")
    assert logged["sslClientVerify"] == "SUCCESS"
    assert logged["sslClientCertificateIssuerName"] == client_issuer_dn(client_issuer)
    assert len(logged["sslClientCertificateFingerprint"]) == 40  # SHA-1, as Azure's


def client_issuer_dn(ca: trustme.CA) -> str:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject.rfc4514_string()


@pytest.mark.parametrize("case", ["none", "other-ca", "expired", "wrong-issuer"])
def test_refused_client_certificates_get_a_400_and_reach_nothing(
    case: str,
    gateway: Gateway,
    mtls_port: int,
    server_ca: trustme.CA,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
    backend: Backend,
) -> None:
    now = dt.datetime.now(dt.UTC)
    client = {
        "none": None,
        "other-ca": trustme.CA().issue_cert("mallory@evil.test"),
        "expired": client_issuer.issue_cert(
            "old@contoso.test",
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        ),
        # Issued by the trusted root itself, not by the intermediate verifyClientCertIssuerDN
        # names: the chain verifies, the issuer does not match.
        "wrong-issuer": client_root.issue_cert("direct@contoso.test"),
    }[case]
    backend.seen.clear()
    status, _, answer = request(mtls_port, server_ca, client=client)
    assert status == 400, answer[:300]
    assert not forwarded(backend)  # nothing reached the backend
    logged = last_line_for(gateway, "secure")
    expected_info = {
        "none": "ERRORINFO_CLIENT_CERTIFICATE_MISSING",
        "wrong-issuer": "ERRORINFO_CLIENT_CERTIFICATE_ISSUER_DN_MISMATCH",
    }.get(case, "ERRORINFO_CLIENT_CERTIFICATE_INVALID")
    assert logged["error_info"] == expected_info
    assert logged["sslClientVerify"] == ("NONE" if case == "none" else logged["sslClientVerify"])
    if case != "none":
        assert logged["sslClientVerify"].startswith("FAILED:")
    if case == "expired":
        assert "expired" in logged["sslClientVerify"]
    # The worker goes on serving a good client.
    good = client_issuer.issue_cert("bob@contoso.test")
    assert request(mtls_port, server_ca, client=good)[0] == 200


def test_a_site_without_client_authentication_cannot_reach_one_with_it(
    mtls_port: int, server_ca: trustme.CA, backend: Backend
) -> None:
    """SNI of the open site (no certificate asked), Host of the secure one: 421, never the
    secure site's backend. Both present the same certificate: the SSL profile decides."""
    backend.seen.clear()
    status, _, _ = request(mtls_port, server_ca, sni=OPEN_SITE, host=SITE)
    assert status == 421
    assert not forwarded(backend)
    assert request(mtls_port, server_ca, sni=OPEN_SITE, host=OPEN_SITE)[0] == 200


def test_the_trusted_client_certificate_shows_azures_read_only_fields(
    gateway: Gateway, mtls_port: int, client_issuer: trustme.CA
) -> None:
    with gateway.api() as api:
        shown = api.get(gateway_url()).json()
    entry = shown["properties"]["trustedClientCertificates"][0]["properties"]
    # The issuer verifyClientCertIssuerDN checks: the deepest certificate of the upload.
    assert entry["clientCertIssuerDN"] == client_issuer_dn(client_issuer)
    assert base64.b64decode(entry["validatedCertData"]).count(b"BEGIN CERTIFICATE") == 2


def test_a_bad_client_ca_upload_is_refused_naming_the_field(
    gateway: Gateway,
    server_ca: trustme.CA,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
    backend: Backend,
) -> None:
    document = gateway_document(server_ca, client_root, client_issuer, backend, free_port())
    leaf = client_issuer.issue_cert("not-a-ca@contoso.test")
    entry = document["properties"]["trustedClientCertificates"][0]["properties"]
    entry["data"] = base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode()
    with gateway.api() as api:
        refused = api.put(gateway_url("refused-mtls"), json=document)
    assert refused.status_code == 400
    details = refused.json()["error"]["details"]
    assert any(
        d["code"] == "ApplicationGatewayTrustedClientCertificateInvalidData"
        and "not a CA certificate" in d["message"]
        for d in details
    ), details


def test_an_ssl_profiles_policy_applies_to_its_listener_only(
    gateway: Gateway,
    server_ca: trustme.CA,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
    backend: Backend,
) -> None:
    """A profile without client authentication, for its TLS policy: the secure site takes
    AppGwSslPolicy20220101S (no CBC suites), then TLS 1.3 only (CustomV2); the open site on
    the same port keeps the gateway's AppGwSslPolicy20220101."""
    port = free_port()
    document = gateway_document(server_ca, client_root, client_issuer, backend, port)
    profile = document["properties"]["sslProfiles"][0]["properties"]
    del profile["trustedClientCertificates"], profile["clientAuthConfiguration"]
    profile["sslPolicy"] = {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101S"}
    gateway.apply(document)

    def handshake(sni: str, *, cipher: str | None = None, tls12: bool = False) -> bool:
        context = ssl.create_default_context()
        server_ca.configure_trust(context)
        if tls12 or cipher:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        if cipher:
            context.set_ciphers(cipher)
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=sni) as tls,
            ):
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
                return tls.recv(12).startswith(b"HTTP/1.1 200")
        except (ssl.SSLError, ConnectionError):
            return False

    cbc = "ECDHE-ECDSA-AES128-SHA256"  # in 20220101, not in 20220101S
    assert handshake(OPEN_SITE, cipher=cbc)
    assert not handshake(SITE, cipher=cbc)
    assert handshake(SITE, cipher="ECDHE-ECDSA-AES128-GCM-SHA256")

    profile["sslPolicy"] = {
        "policyType": "CustomV2",
        "minProtocolVersion": "TLSv1_3",
        "cipherSuites": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"],
    }
    gateway.apply(document)
    assert handshake(SITE)  # TLS 1.3
    assert not handshake(SITE, tls12=True)  # closed right after the handshake
    assert handshake(OPEN_SITE, tls12=True)


def test_an_azure_gateway_with_mutual_tls_and_rewrites_is_imported_and_served(
    gateway: Gateway,
    server_ca: trustme.CA,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
    backend: Backend,
    tmp_path: Path,
) -> None:
    """The az-show export of tests/data/azure/az-show-v2-rewrites.json, its listener made
    HTTPS with an SSL profile as Azure's portal makes one (az show prints a certificate without
    its key, so the PFX is given to `appgw import`)."""
    document = json.loads(AZ_SHOW.read_text())
    gid = document["id"]
    rg = document["resourceGroup"]

    def ref(collection: str, name: str) -> dict[str, str]:
        return {"id": f"{gid}/{collection}/{name}", "resourceGroup": rg}

    port = free_port()
    document["frontendPorts"][0]["port"] = port
    document["backendAddressPools"][0]["backendAddresses"] = [{"ipAddress": "127.0.0.1"}]
    document["backendHttpSettingsCollection"][0]["port"] = backend.port
    document["sslCertificates"] = [
        {
            "id": f"{gid}/sslCertificates/www",
            "name": "www",
            "resourceGroup": rg,
            "type": "Microsoft.Network/applicationGateways/sslCertificates",
            "publicCertData": "MIIB",
        }
    ]
    document["trustedClientCertificates"] = [
        {
            "id": f"{gid}/trustedClientCertificates/clients",
            "name": "clients",
            "resourceGroup": rg,
            "data": upload(client_root, client_issuer),
            "type": "Microsoft.Network/applicationGateways/trustedClientCertificates",
        }
    ]
    document["sslProfiles"] = [
        {
            "id": f"{gid}/sslProfiles/mutual",
            "name": "mutual",
            "resourceGroup": rg,
            "type": "Microsoft.Network/applicationGateways/sslProfiles",
            "trustedClientCertificates": [ref("trustedClientCertificates", "clients")],
            "clientAuthConfiguration": {
                "verifyClientCertIssuerDN": True,
                "verifyClientRevocation": "None",
            },
        }
    ]
    listener = document["httpListeners"][0]
    listener.update(
        protocol="Https",
        sslCertificate=ref("sslCertificates", "www"),
        sslProfile=ref("sslProfiles", "mutual"),
        hostNames=[SITE],
        requireServerNameIndication=True,
    )
    exported = tmp_path / "az-show.json"
    exported.write_text(json.dumps(document))
    pfx = make_pfx(server_ca, SITE)
    pfx_file = tmp_path / "www.pfx"
    pfx_file.write_bytes(base64.b64decode(pfx.b64))
    done = run_cli(
        "import", str(exported), "-g", rg, "--ssl-cert", f"www={pfx_file}",
        "--ssl-cert-password-stdin",
        stdin=pfx.password + "\n",
        config=tmp_path / "config.json",
        env={"APPGW_SERVER": gateway.server.base_url, "APPGW_TOKEN": TOKEN,
             "APPGW_SUBSCRIPTION": SUB},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    served = f"{document['name']} version 1"
    wait_until(lambda: gateway.log().count(served) >= gateway.workers, what="the imported gateway")

    client = client_issuer.issue_cert("carol@contoso.test")
    status, seen, answer = request(port, server_ca, client=client)
    assert status == 200 and seen is not None, answer[:300]
    assert b"strict-transport-security" in answer.lower()  # the rewrite set applies
    assert seen["target"].startswith("/x?request=")
    assert request(port, server_ca)[0] == 400  # no client certificate
