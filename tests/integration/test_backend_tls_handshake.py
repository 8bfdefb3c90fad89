"""Real TLS handshakes against backends on 127.0.0.1: the gateway-side client connects with
`client_context` on uvloop, takes `presented_chain` from the transport's SSLObject and judges
it with `verify_presented_chain`. Certificates are generated here (EC keys, once per module)
and written to a temporary directory only because `ssl.SSLContext.load_cert_chain` needs
files."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from appgw.compile.snapshot import UpstreamKey
from appgw.dataplane.upstream import BackendTlsRejected, UpstreamConnection, UpstreamPool
from appgw.tls.client import client_context, presented_chain
from appgw.tls.trust import BackendCertificateVerdict, BackendTrust, verify_presented_chain

NAME = "backend.test"
T = TypeVar("T")


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def issue(
    cn: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    sans: Sequence[str] = (),
    expired: bool = False,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1) if expired else now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in sans]), False
        )
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    root: Issued
    inter: Issued
    leaf: Issued
    expired_leaf: Issued
    self_signed: Issued
    other_root: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue("Backend Root", ca=True)
    inter = issue("Backend Intermediate", root, ca=True)
    return Pki(
        root=root,
        inter=inter,
        leaf=issue(NAME, inter, sans=(NAME,)),
        expired_leaf=issue(NAME, inter, sans=(NAME,), expired=True),
        self_signed=issue(NAME, sans=(NAME,)),
        other_root=issue("Other Root", ca=True),
    )


class TlsBackend:
    """A TLS server in a thread that presents `chain` (first entry: the certificate whose
    key it holds) and records the SNI of every ClientHello (None: no SNI)."""

    def __init__(self, directory: Path, chain: Sequence[Issued], key: ec.EllipticCurvePrivateKey):
        directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = directory / "chain.pem", directory / "key.pem"
        cert_file.write_bytes(
            b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in chain)
        )
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.context.sni_callback = self._record_sni
        self.sni: list[str | None] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _record_sni(self, _ssl_object: Any, server_name: str | None, _context: Any) -> None:
        self.sni.append(server_name)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(5)
            try:
                with self.context.wrap_socket(connection, server_side=True) as tls:
                    while tls.recv(1024):
                        pass
            except OSError:
                pass  # the client hung up without close_notify, or the handshake failed
            finally:
                connection.close()

    def __enter__(self) -> TlsBackend:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


StartBackend = Callable[[Sequence[Issued], ec.EllipticCurvePrivateKey], TlsBackend]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[StartBackend]:
    servers: list[TlsBackend] = []

    def start(chain: Sequence[Issued], key: ec.EllipticCurvePrivateKey) -> TlsBackend:
        server = TlsBackend(tmp_path / str(len(servers)), chain, key).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


@dataclass(frozen=True)
class Handshake:
    chain: tuple[bytes, ...]
    version: str | None
    alpn: str | None


class _Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _handshake(
    port: int, trust: BackendTrust, server_hostname: str | None, *, host: str = "127.0.0.1"
) -> Handshake:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        _Client, host, port, ssl=client_context(trust), server_hostname=server_hostname
    )
    try:
        ssl_object = transport.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        return Handshake(
            presented_chain(ssl_object), ssl_object.version(), ssl_object.selected_alpn_protocol()
        )
    finally:
        transport.close()
        await asyncio.wait_for(protocol.closed, 5)


def run_on(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], coro: Coroutine[Any, Any, T]
) -> T:
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def handshake(port: int, trust: BackendTrust, server_hostname: str | None = NAME) -> Handshake:
    return run_on(uvloop.new_event_loop, _handshake(port, trust, server_hostname))


def judge(
    trust: BackendTrust, result: Handshake, verify_name: str | None = NAME
) -> BackendCertificateVerdict:
    return verify_presented_chain(trust, result.chain, verify_name=verify_name)


def roots(*certs: Issued) -> BackendTrust:
    return BackendTrust(sku_v1=False, trusted_roots_der=tuple(c.der for c in certs))


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop], ids=["uvloop", "asyncio"]
)
def test_good_chain_is_trusted(
    pki: Pki, backend: StartBackend, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    server = backend([pki.leaf, pki.inter], pki.leaf.key)
    trust = roots(pki.root)
    result = run_on(loop_factory, _handshake(server.port, trust, NAME))
    assert result.chain == (pki.leaf.der, pki.inter.der)
    assert result.version == "TLSv1.3"
    assert server.sni == [NAME]
    verdict = judge(trust, result)
    assert verdict.ok, verdict.message
    assert verdict.verify_name == NAME


def test_blocking_socket_chain(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.leaf, pki.inter], pki.leaf.key)
    trust = roots(pki.root)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        client_context(trust).wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        assert presented_chain(tls) == (pki.leaf.der, pki.inter.der)
    assert server.sni == [NAME]


def test_v1_allow_listed_leaf_over_tls_1_2(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.leaf, pki.inter], pki.leaf.key)
    trust = BackendTrust(sku_v1=True, allowed_leaves_der=(pki.leaf.der,))
    result = handshake(server.port, trust)
    assert result.version == "TLSv1.2"
    assert judge(trust, result).ok
    other = BackendTrust(sku_v1=True, allowed_leaves_der=(pki.self_signed.der,))
    assert judge(other, result).check == "LeafNotAllowListed"


def test_leaf_only_is_intermediate_missing(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.leaf], pki.leaf.key)
    trust = roots(pki.root)
    result = handshake(server.port, trust)
    assert result.chain == (pki.leaf.der,)
    assert judge(trust, result).check == "IntermediateMissing"


def test_intermediate_presented_before_leaf_is_leaf_not_first(
    pki: Pki, backend: StartBackend
) -> None:
    # The server holds the intermediate's key and serves it first, the leaf second.
    server = backend([pki.inter, pki.leaf], pki.inter.key)
    trust = roots(pki.root)
    result = handshake(server.port, trust)
    assert result.chain == (pki.inter.der, pki.leaf.der)
    assert judge(trust, result).check == "LeafNotFirst"


def test_root_sent_before_intermediate_is_tolerated(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.leaf, pki.root, pki.inter], pki.leaf.key)
    trust = roots(pki.root)
    result = handshake(server.port, trust)
    assert result.chain == (pki.leaf.der, pki.root.der, pki.inter.der)
    verdict = judge(trust, result)
    assert verdict.ok and "(note: " in verdict.message
    assert judge(roots(pki.other_root), result).check == "TrustedRootMismatchRootSent"


def test_self_signed_non_ca_leaf_is_intermediate_missing(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.self_signed], pki.self_signed.key)
    trust = roots(pki.self_signed)  # uploading it as a root does not help (Azure behaviour)
    result = handshake(server.port, trust)
    assert result.chain == (pki.self_signed.der,)
    verdict = judge(trust, result)
    assert verdict.check == "IntermediateMissing" and "self-signed" in verdict.message
    relaxed = BackendTrust(
        sku_v1=False, trusted_roots_der=(pki.self_signed.der,), validate_chain_and_expiry=False
    )
    assert judge(relaxed, result).ok


def test_expired_leaf(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.expired_leaf, pki.inter], pki.expired_leaf.key)
    trust = roots(pki.root)
    verdict = judge(trust, handshake(server.port, trust))
    assert verdict.check == "Expired" and verdict.openssl_error == 10
    assert "leaf certificate" in verdict.message


def test_wrong_sni_name_is_a_name_mismatch(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.leaf, pki.inter], pki.leaf.key)
    trust = roots(pki.root)
    result = handshake(server.port, trust, "api.other.test")
    assert server.sni == ["api.other.test"]
    assert judge(trust, result, "api.other.test").check == "NameMismatch"


def test_no_sni_for_an_ip_member(pki: Pki, backend: StartBackend) -> None:
    server = backend([pki.leaf, pki.inter], pki.leaf.key)
    trust = BackendTrust(sku_v1=True, allowed_leaves_der=(pki.leaf.der,))
    # asyncio then defaults server_hostname to the IP literal, which ssl never sends as SNI.
    result = handshake(server.port, trust, None)
    assert server.sni == [None]
    verdict = judge(trust, result, None)
    assert verdict.ok and verdict.verify_name is None
    # An IP address to connect to with a name to send: the name goes out as SNI.
    handshake(server.port, trust, NAME)
    assert server.sni == [None, NAME]


def test_pool_resumes_a_verified_session_for_the_same_identity_only(
    pki: Pki, backend: StartBackend
) -> None:
    # Leaf + intermediate: a resumed handshake carries no chain, so the resumed connection is
    # judged on the chain verified when the session was made, and must still pass.
    server = backend([pki.leaf, pki.inter], pki.leaf.key)
    trust = roots(pki.root)

    def reused(connection: UpstreamConnection) -> bool:
        assert connection.transport is not None
        return bool(connection.transport.get_extra_info("ssl_object").session_reused)

    async def scenario() -> tuple[bool, bool, bool]:
        # The test backend serves one connection at a time: each is closed before the next.
        pool = UpstreamPool()
        key = UpstreamKey("127.0.0.1", server.port, NAME, NAME, trust)
        first = await pool.connect(key, 5)
        await asyncio.sleep(0.2)  # TLS 1.3 sends the session ticket after the handshake
        pool.release(first)
        pool.close_all()
        second = await pool.connect(key, 5)
        second.close()
        # Same backend and name, another trust: another identity, never offered that session.
        other_trust = UpstreamKey("127.0.0.1", server.port, NAME, NAME, roots(pki.root, pki.inter))
        third = await pool.connect(other_trust, 5)
        third.close()
        # Same backend, a name its certificate does not have: rejected, session or not.
        with pytest.raises(BackendTlsRejected):
            await pool.connect(UpstreamKey("127.0.0.1", server.port, NAME, "other.test", trust), 5)
        return reused(first), reused(second), reused(third)

    assert run_on(uvloop.new_event_loop, scenario()) == (False, True, False)


class RenegotiatingBackend:
    """A TLS 1.2 backend (pyOpenSSL) that answers one request, then asks to renegotiate with
    another certificate (from another root) and answers a second request. It records whether
    the renegotiation completed, i.e. whether the client accepted the new certificate."""

    def __init__(self, first: Sequence[Issued], second: Sequence[Issued]) -> None:
        self.contexts = [self._context(first), self._context(second)]
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.renegotiated: bool | None = None
        self.answers = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @staticmethod
    def _context(chain: Sequence[Issued]) -> SSL.Context:
        context = SSL.Context(SSL.TLSv1_2_METHOD)
        context.use_certificate(chain[0].cert)
        context.use_privatekey(chain[0].key)
        for extra in chain[1:]:
            context.add_extra_chain_cert(extra.cert)
        return context

    def _serve(self) -> None:
        self._listener.settimeout(10)
        sock, _ = self._listener.accept()
        sock.settimeout(None)  # pyOpenSSL wants a blocking socket
        tls = SSL.Connection(self.contexts[0], sock)
        tls.set_accept_state()
        try:
            self._answer(tls)
            tls.set_context(self.contexts[1])  # the renegotiated handshake would present this
            tls.renegotiate()
            tls.do_handshake()  # sends the HelloRequest
            self._answer(tls)  # the client's next request (after its reply to the request)
            self.renegotiated = not tls.renegotiate_pending()
        except (SSL.Error, OSError):
            self.renegotiated = False
        finally:
            with contextlib.suppress(SSL.Error, OSError):
                tls.shutdown()
            sock.close()

    def _answer(self, tls: SSL.Connection) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            received += tls.recv(4096)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.answers += 1

    def __enter__(self) -> RenegotiatingBackend:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(10)
        self._listener.close()


class _Responses:
    """The ResponseConsumer of a test: it collects what the upstream connection reports."""

    def __init__(self) -> None:
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.status = 0

    def hold_output(self) -> None: ...
    def flush_output(self) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...

    def response_head(self, status: int, headers: list[Any], upgrade: bool) -> None:
        self.status = status

    def response_end(self, reusable: bool) -> None:
        self.done.set_result(reusable)

    def upstream_lost(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)


def test_a_verified_backend_cannot_renegotiate_to_another_certificate(pki: Pki) -> None:
    """The second certificate comes from a root the gateway does not trust: had the connection
    renegotiated, later requests (of any client) would go to an unverified server."""
    trust = roots(pki.root)
    impostor = issue(NAME, pki.other_root, sans=(NAME,))

    async def two_requests(port: int) -> list[int]:
        pool = UpstreamPool()
        connection = await pool.connect(UpstreamKey("127.0.0.1", port, NAME, NAME, trust), 5)
        statuses = []
        for _ in range(2):
            responses = _Responses()
            connection.start(responses, head_only=False)
            connection.write(b"GET / HTTP/1.1\r\nHost: backend.test\r\n\r\n")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(responses.done, 2)
            statuses.append(responses.status)
            await asyncio.sleep(0.2)  # the HelloRequest arrives after the first answer
        connection.close()
        return statuses

    with RenegotiatingBackend([pki.leaf, pki.inter], [impostor, pki.other_root]) as server:
        run_on(uvloop.new_event_loop, two_requests(server.port))
    assert server.renegotiated is False, "the backend switched certificates mid-connection"
