"""`verifyClientRevocation: OCSP` over real sockets: the tests' own OCSP responder and CRL
server (signed by the issuing CA's key), client certificates that name them, a revoked one
of each kind, a responder that is down, and answers cached so a client's next connection
costs no fetch."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from backends import Backend, free_port
from e2e.harness import Gateway
from e2e.test_mutual_tls import forwarded, gateway_document, last_line_for, request

pytestmark = pytest.mark.slow


@dataclass
class Revoker:
    """The issuing CA's OCSP responder and CRL, on one HTTP server of the tests' own."""

    issuer: trustme.CA
    revoked: set[int] = field(default_factory=set)
    issued: dict[int, x509.Certificate] = field(default_factory=dict)
    ocsp_requests: int = 0
    crl_requests: int = 0
    port: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.issuer.cert_pem.bytes())

    @property
    def key(self) -> Any:
        return serialization.load_pem_private_key(self.issuer.private_key_pem.bytes(), None)

    def start(self) -> Revoker:
        revoker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # OCSP
                revoker.ocsp_requests += 1
                size = int(self.headers["Content-Length"])
                request = ocsp.load_der_ocsp_request(self.rfile.read(size))
                self._send(revoker.ocsp_answer(request.serial_number), "application/ocsp-response")

            def do_GET(self) -> None:  # the CRL
                revoker.crl_requests += 1
                self._send(revoker.crl(), "application/pkix-crl")

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def client(self, name: str, *, ocsp_port: int | None = None, crl: bool = False) -> Any:
        """A client certificate (and key) naming this OCSP responder, or this CRL."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
        )
        if ocsp_port is not None:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(f"http://127.0.0.1:{ocsp_port}/"),
                        )
                    ]
                ),
                critical=False,
            )
        if crl:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [
                                x509.UniformResourceIdentifier(
                                    f"http://127.0.0.1:{self.port}/ca.crl"
                                )
                            ],
                            None,
                            None,
                            None,
                        )
                    ]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        self.issued[certificate.serial_number] = certificate
        return ClientFiles(certificate, key, self.certificate)

    def ocsp_answer(self, serial: int) -> bytes:
        now = dt.datetime.now(dt.UTC)
        revoked = serial in self.revoked
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=self.issued[serial],
            issuer=self.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(hours=1),
            revocation_time=now - dt.timedelta(minutes=5) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def crl(self) -> bytes:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(now + dt.timedelta(hours=1))
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - dt.timedelta(minutes=5))
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass
class ClientFiles:
    certificate: x509.Certificate
    key: Any
    issuer: x509.Certificate

    def configure_cert(self, context: Any) -> None:
        """As trustme's LeafCert does: the key and the chain (leaf, issuer) from files."""
        import tempfile

        with tempfile.NamedTemporaryFile("wb", suffix=".pem") as handle:
            handle.write(
                self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                + self.certificate.public_bytes(serialization.Encoding.PEM)
                + self.issuer.public_bytes(serialization.Encoding.PEM)
            )
            handle.flush()
            context.load_cert_chain(handle.name)


@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_root() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Clients Root")


@pytest.fixture(scope="module")
def revoker(client_root: trustme.CA) -> Iterator[Revoker]:
    running = Revoker(client_root.create_child_ca()).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    server = Backend("app").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def port(
    gateway: Gateway,
    server_ca: trustme.CA,
    client_root: trustme.CA,
    revoker: Revoker,
    backend: Backend,
) -> int:
    chosen = free_port()
    document = gateway_document(server_ca, client_root, revoker.issuer, backend, chosen)
    profile = document["properties"]["sslProfiles"][0]["properties"]
    profile["clientAuthConfiguration"]["verifyClientRevocation"] = "OCSP"
    gateway.apply(document)
    return chosen


def test_ocsp_good_and_revoked_with_the_answer_cached(
    gateway: Gateway, port: int, server_ca: trustme.CA, revoker: Revoker, backend: Backend
) -> None:
    good = revoker.client("good-ocsp", ocsp_port=revoker.port)
    before = revoker.ocsp_requests
    status, seen, _ = request(port, server_ca, client=good)
    assert status == 200 and seen is not None
    assert seen["headers"]["x-client-verify"] == "SUCCESS"
    asked = revoker.ocsp_requests - before
    assert asked >= 1
    # The answer is kept until the responder's nextUpdate: the client's next connections
    # (to a worker that asked before) cost no fetch; two workers ask at most once each.
    for _ in range(4):
        assert request(port, server_ca, client=good)[0] == 200
    assert revoker.ocsp_requests - before <= 2

    revoked = revoker.client("revoked-ocsp", ocsp_port=revoker.port)
    revoker.revoked.add(revoked.certificate.serial_number)
    backend.seen.clear()
    status, _, _ = request(port, server_ca, client=revoked)
    assert status == 400 and not forwarded(backend)
    logged = last_line_for(gateway, "secure")
    assert logged["error_info"] == "ERRORINFO_CLIENT_CERTIFICATE_REVOKED"
    assert logged["sslClientVerify"] == "FAILED:certificate revoked"


def test_a_certificate_without_ocsp_is_checked_against_its_crl(
    gateway: Gateway, port: int, server_ca: trustme.CA, revoker: Revoker
) -> None:
    good = revoker.client("good-crl", crl=True)
    revoked = revoker.client("revoked-crl", crl=True)
    revoker.revoked.add(revoked.certificate.serial_number)
    assert request(port, server_ca, client=good)[0] == 200
    assert request(port, server_ca, client=revoked)[0] == 400
    assert last_line_for(gateway, "secure")["error_info"] == (
        "ERRORINFO_CLIENT_CERTIFICATE_REVOKED"
    )
    assert revoker.crl_requests >= 1


def test_an_unreachable_responder_or_no_responder_is_a_400_and_the_worker_goes_on(
    gateway: Gateway, port: int, server_ca: trustme.CA, revoker: Revoker
) -> None:
    down = revoker.client("responder-down", ocsp_port=free_port())  # nothing listens there
    assert request(port, server_ca, client=down)[0] == 400
    logged = last_line_for(gateway, "secure")
    assert logged["error_info"] == "ERRORINFO_CLIENT_CERTIFICATE_REVOCATION_UNKNOWN"
    assert "could not be reached" in logged["sslClientVerify"]

    nowhere = revoker.client("no-responder")  # neither OCSP nor CRL named
    assert request(port, server_ca, client=nowhere)[0] == 400
    assert "no OCSP responder" in last_line_for(gateway, "secure")["sslClientVerify"]

    good = revoker.client("still-served", ocsp_port=revoker.port)
    assert request(port, server_ca, client=good)[0] == 200
