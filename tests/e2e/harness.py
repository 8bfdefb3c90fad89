"""A running `appgw serve` configured through its REST API, and backends with chosen chains."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import httpx
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backends import Backend, wait_until
from helpers import TOKEN, ServeProcess, gateway_id, gateway_url


@dataclass
class Gateway:
    server: ServeProcess
    workers: int

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def apply(self, document: dict[str, Any], name: str = "appgw") -> int:
        """PUT the gateway and wait until every worker serves the new version: its
        Azure-AsyncOperation turns Succeeded then, as Azure's provisioning does."""
        with self.api() as api:
            response = api.put(gateway_url(name), json=document)
            assert response.status_code in (200, 201), response.text
            operation = response.headers["Azure-AsyncOperation"]

            def status() -> str:
                return str(api.get(operation).json()["status"])

            wait_until(lambda: status() != "InProgress", what="the PUT's operation to end")
            assert status() == "Succeeded"
            revisions = api.get(f"{gateway_id(name)}/revisions?api-version=2026-03-01").json()
        return int(revisions["value"][-1]["version"])

    def wait_current(self, name: str = "appgw") -> int:
        """Wait until every worker serves the gateway's current version (after a portal save)."""
        with self.api() as api:
            revisions = api.get(f"{gateway_id(name)}/revisions?api-version=2026-03-01").json()
        version = int(revisions["value"][-1]["version"])
        self.wait_version(version, name)
        return version

    def wait_version(self, version: int, name: str = "appgw") -> None:
        marker = f"serving {gateway_id(name)} version {version}"
        wait_until(
            lambda: self.log().count(marker) >= self.workers,
            what=f"workers to serve version {version}",
        )

    def log(self) -> str:
        return self.server.log_path.read_text()


def context_for(cert_pems: list[bytes], key_pem: bytes) -> ssl.SSLContext:
    """A server context presenting exactly these certificates, in this order."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as handle:
        handle.write(b"".join(cert_pems) + key_pem)
    try:
        context.load_cert_chain(handle.name)
    finally:
        os.unlink(handle.name)
    return context


def backend_presenting(name: str, cert_pems: list[bytes], key_pem: bytes) -> Backend:
    return Backend(name, context=context_for(cert_pems, key_pem)).start()


def issued(ca: trustme.CA, *names: str, **kwargs: Any) -> tuple[list[bytes], bytes]:
    leaf = ca.issue_cert(*names, **kwargs)
    return [blob.bytes() for blob in leaf.cert_chain_pems], leaf.private_key_pem.bytes()


def self_signed_leaf(name: str) -> tuple[list[bytes], bytes, bytes]:
    """A self-signed certificate that is not a CA: (chain, key, DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        [cert.public_bytes(serialization.Encoding.PEM)],
        key_pem,
        cert.public_bytes(serialization.Encoding.DER),
    )


def https_client(ca: trustme.CA | None) -> httpx.Client:
    context = ssl.create_default_context()
    if ca is not None:
        ca.configure_trust(context)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return httpx.Client(verify=context, timeout=15)


def get(
    port: int,
    host: str,
    *,
    https: bool = False,
    ca: trustme.CA | None = None,
    path: str = "/",
    sni: str | None = "",
    headers: dict[str, str] | None = None,
    follow: bool = False,
) -> httpx.Response:
    """GET 127.0.0.1:port as if for `host` (Host header, and SNI unless sni=None)."""
    scheme = "https" if https else "http"
    extensions: dict[str, Any] = {}
    if https and sni is not None:
        extensions["sni_hostname"] = sni or host
    with https_client(ca) if https else httpx.Client(timeout=15) as client:
        return client.get(
            f"{scheme}://127.0.0.1:{port}{path}",
            headers={"Host": host, **(headers or {})},
            extensions=extensions,
            follow_redirects=follow,
        )


def served_certificate(port: int, sni: str | None) -> x509.Certificate | None:
    """The leaf the gateway presents for this SNI (None: the handshake was refused)."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, ConnectionError):
        return None
    return x509.load_der_x509_certificate(der) if der else None
