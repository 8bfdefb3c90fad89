"""The real `appgw client-cert` and `appgw ssl-profile` commands, and `http-listener
--ssl-profile`, against a real `appgw serve`: what they store, az's flattened output with the
read-only clientCertIssuerDN, and refusals that name the flag, the file or the API's code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509

from backends import free_port
from helpers import Pfx, ServeProcess, cli_ok, cli_refused, fresh_gateway, gateway_url

pytestmark = pytest.mark.slow

GW = ("-g", "rg1", "--gateway-name", "appgw", "--subscription", "sub1")
LISTENER = ("-n", "appGatewayHttpListener")


@pytest.fixture
def api(server: ServeProcess, pfx: Pfx, root_cer: str) -> Iterator[httpx.Client]:
    """A fresh v2 gateway with one Https listener for each test, on a free port."""
    with fresh_gateway(server.base_url, pfx, root_cer, free_port()) as client:
        yield client


@pytest.fixture(scope="module")
def client_root() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Clients Root")


@pytest.fixture(scope="module")
def client_issuer(client_root: trustme.CA) -> trustme.CA:
    return client_root.create_child_ca()


def pem_file(where: Path, *cas: trustme.CA) -> Path:
    """A CA chain upload as Azure asks for it: the certificates' PEM in one file."""
    where.write_bytes(b"".join(ca.cert_pem.bytes() for ca in cas))
    return where


def subject(ca: trustme.CA) -> str:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject.rfc4514_string()


def properties(api: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = api.get(gateway_url()).json()["properties"]
    return found


def last(reference: dict[str, str]) -> str:
    return reference["id"].rsplit("/", 1)[-1]


def test_client_certs_and_ssl_profiles(
    server: ServeProcess,
    api: httpx.Client,
    tmp_path: Path,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
) -> None:
    chain = pem_file(tmp_path / "client-ca.pem", client_root, client_issuer)
    added = cli_ok(server, "client-cert", "add", *GW, "-n", "clientCa", "--data", str(chain))
    # az's shape: `properties` lifted into the entry, resourceGroup beside its id; the issuer
    # DN verifyClientCertIssuerDN compares with is the intermediate's (it issues the clients).
    assert added["name"] == "clientCa" and "properties" not in added
    assert added["id"].endswith("/trustedClientCertificates/clientCa")
    assert added["resourceGroup"] == "rg1"
    assert added["clientCertIssuerDN"] == subject(client_issuer)
    assert added["data"] and added["validatedCertData"]
    assert cli_ok(server, "client-cert", "show", *GW, "-n", "clientca") == added
    listed = cli_ok(server, "client-cert", "list", *GW)
    assert [entry["clientCertIssuerDN"] for entry in listed] == [subject(client_issuer)]

    profile = cli_ok(
        server, "ssl-profile", "add", *GW, "-n", "mtlsProfile",
        "--policy-type", "Predefined", "--policy-name", "AppGwSslPolicy20220101S",
        "--trusted-client-certificates", "clientCa", "--client-auth-configuration", "True",
    )  # fmt: skip
    assert profile["sslPolicy"] == {
        "policyType": "Predefined",
        "policyName": "AppGwSslPolicy20220101S",
    }
    assert profile["clientAuthConfiguration"]["verifyClientCertIssuerDN"] is True
    assert [last(ref) for ref in profile["trustedClientCertificates"]] == ["clientCa"]
    (stored_profile,) = properties(api)["sslProfiles"]
    assert stored_profile["properties"]["sslPolicy"] == profile["sslPolicy"]

    listener = cli_ok(
        server, "http-listener", "update", *GW, *LISTENER, "--ssl-profile", "mtlsProfile"
    )
    assert last(listener["sslProfile"]) == "mtlsProfile"
    (stored_listener,) = properties(api)["httpListeners"]
    assert last(stored_listener["properties"]["sslProfile"]) == "mtlsProfile"

    # A new --policy-type starts the policy afresh (the Predefined name does not carry over
    # into CustomV2); the other flags change their own field only.
    updated = cli_ok(
        server, "ssl-profile", "update", *GW, "-n", "mtlsProfile",
        "--policy-type", "CustomV2", "--min-protocol-version", "TLSv1_3",
        "--verify-client-revocation", "OCSP",
    )  # fmt: skip
    assert updated["sslPolicy"] == {"policyType": "CustomV2", "minProtocolVersion": "TLSv1_3"}
    assert updated["clientAuthConfiguration"] == {
        "verifyClientCertIssuerDN": True,
        "verifyClientRevocation": "OCSP",
    }
    updated = cli_ok(
        server, "ssl-profile", "update", *GW, "-n", "mtlsProfile",
        "--min-protocol-version", "TLSv1_2", "--client-auth-config", "false",
        "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 TLS_AES_128_GCM_SHA256",
    )  # fmt: skip
    assert updated["sslPolicy"] == {
        "policyType": "CustomV2",
        "minProtocolVersion": "TLSv1_2",
        "cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
    }
    assert updated["clientAuthConfiguration"]["verifyClientCertIssuerDN"] is False
    (shown,) = cli_ok(server, "ssl-profile", "list", *GW)
    assert shown == cli_ok(server, "ssl-profile", "show", *GW, "-n", "mtlsProfile")
    assert shown["sslPolicy"] == updated["sslPolicy"]

    # verifyClientAuthMode has no flag (nor in az): the generic update reaches it, as the
    # docs show.
    cli_ok(
        server, "update", "-g", "rg1", "-n", "appgw", "--subscription", "sub1",
        "--set", "sslProfiles[0].clientAuthConfiguration.verifyClientAuthMode=Passthrough",
    )  # fmt: skip
    settings = properties(api)["sslProfiles"][0]["properties"]["clientAuthConfiguration"]
    assert settings["verifyClientAuthMode"] == "Passthrough"

    # A root-only chain: the root now issues the clients.
    root_only = pem_file(tmp_path / "root.pem", client_root)
    renewed = cli_ok(
        server, "client-cert", "update", *GW, "-n", "clientCa", "--data", str(root_only)
    )
    assert renewed["clientCertIssuerDN"] == subject(client_root)

    detached = cli_ok(server, "http-listener", "update", *GW, *LISTENER, "--ssl-profile", "")
    assert "sslProfile" not in detached
    assert "sslProfile" not in properties(api)["httpListeners"][0]["properties"]
    assert cli_ok(server, "ssl-profile", "remove", *GW, "-n", "mtlsProfile") is None
    assert cli_ok(server, "client-cert", "remove", *GW, "-n", "clientCa") is None
    after = properties(api)
    assert after.get("sslProfiles", []) == [] and after.get("trustedClientCertificates", []) == []


def test_refusals_name_the_flag_the_file_or_the_api_code(
    server: ServeProcess,
    api: httpx.Client,
    tmp_path: Path,
    client_root: trustme.CA,
    client_issuer: trustme.CA,
) -> None:
    before = properties(api)
    # A client's own certificate is not a CA: the API refuses it with Azure's code.
    leaf = tmp_path / "alice.pem"
    leaf.write_bytes(client_issuer.issue_cert("alice@contoso.test").cert_chain_pems[0].bytes())
    message = cli_refused(server, "client-cert", "add", *GW, "-n", "alice", "--data", str(leaf))
    assert "(ApplicationGatewayTrustedClientCertificateInvalidData)" in message
    assert "is not a CA certificate" in message

    # What the file alone tells is refused before any request: no API listens here.
    nowhere = f"http://127.0.0.1:{free_port()}"
    missing = tmp_path / "no-such.pem"
    message = cli_refused(nowhere, "client-cert", "add", *GW, "-n", "ca", "--data", str(missing))
    assert f"--data {missing}" in message and "no such file" in message
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a certificate\n")
    message = cli_refused(nowhere, "client-cert", "add", *GW, "-n", "ca", "--data", str(garbage))
    assert f"--data {garbage}" in message and "not certificates" in message
    large = tmp_path / "large.pem"
    large.write_bytes(client_root.cert_pem.bytes() * 40)
    message = cli_refused(nowhere, "client-cert", "add", *GW, "-n", "ca", "--data", str(large))
    assert f"--data {large}" in message and "at most 25600 bytes" in message
    message = cli_refused(nowhere, "client-cert", "add", *GW, "-n", "ca")
    assert "--data" in message  # required on add

    chain = pem_file(tmp_path / "client-ca.pem", client_root, client_issuer)
    cli_ok(server, "client-cert", "add", *GW, "-n", "clientCa", "--data", str(chain))
    message = cli_refused(
        server, "ssl-profile", "add", *GW, "-n", "mtlsProfile",
        "--trusted-client-certificates", "clientCa", "otherCa",
    )  # fmt: skip
    assert "--trusted-client-certificates 'otherCa'" in message
    assert "no trusted client certificate" in message and "clientCa" in message
    message = cli_refused(
        server, "ssl-profile", "add", *GW, "-n", "mtlsProfile", "--verify-client-revocation", "CRL"
    )
    assert "--verify-client-revocation" in message and "None, OCSP" in message
    # Checking revocation without trusted client certificates: the API's rule, named.
    message = cli_refused(
        server, "ssl-profile", "add", *GW, "-n", "mtlsProfile", "--verify-client-revocation", "OCSP"
    )
    assert "ApplicationGatewaySslProfileClientAuthWithoutTrustedCertificates" in message
    message = cli_refused(
        server, "http-listener", "update", *GW, *LISTENER, "--ssl-profile", "mtlsProfile"
    )
    assert "--ssl-profile 'mtlsProfile'" in message and "no SSL profile" in message
    message = cli_refused(server, "ssl-profile", "show", *GW, "-n", "mtlsProfile")
    assert "--name 'mtlsProfile'" in message and "no SSL profile" in message

    after = properties(api)
    assert after.get("sslProfiles", []) == before.get("sslProfiles", [])
    assert [entry["name"] for entry in after["trustedClientCertificates"]] == ["clientCa"]
