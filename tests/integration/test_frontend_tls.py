"""Frontend TLS with real handshakes: SNI dispatch, full chains, fallbacks and TLS policies.

Servers run on a uvloop loop in a background thread; clients are the standard library's
blocking sockets. Where the exact TLS alert matters, a handshake over memory BIOs shows it
(asyncio and uvloop close the socket on a failed handshake before the alert is flushed, so a
socket client sees only EOF).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import ssl
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.certificates import ListenerCertificate, load_pfx
from appgw.compile.matching import CertificateSelector
from appgw.dataplane.sni import dispatcher_context
from appgw.model.enums import SslCipherSuite as C, SslPolicyName
from appgw.model.resource import SslPolicy
from appgw.tls import server as tls_server, tickets
from appgw.tls.server import (
    OPENSSL_CIPHER_NAMES,
    TlsPolicy,
    new_context,
    policy_from_model,
    server_context,
)

PFX_PASSWORD = "Pfx4Frontend"
HANDSHAKE_TIMEOUT = 5  # seconds; a local handshake takes milliseconds
_TLS_V1, _TLS_V11, _TLS_V12, _TLS_V13 = (
    ssl.TLSVersion.TLSv1,
    ssl.TLSVersion.TLSv1_1,
    ssl.TLSVersion.TLSv1_2,
    ssl.TLSVersion.TLSv1_3,
)

# --- certificates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    host: str
    certificate: ListenerCertificate
    leaf_der: bytes
    key_pem: bytes


def make_site(
    issuer: trustme.CA, host: str, key_type: trustme.KeyType = trustme.KeyType.ECDSA
) -> Site:
    """A listener certificate the way users upload it: a password-protected PFX with the chain."""
    issued = issuer.issue_cert(host, key_type=key_type)
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    chain = [x509.load_pem_x509_certificate(blob.bytes()) for blob in issued.cert_chain_pems]
    pfx = pkcs12.serialize_key_and_certificates(
        b"listener",
        key,  # type: ignore[arg-type]
        chain[0],
        chain[1:],
        serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
    )
    return Site(
        host,
        load_pfx(pfx, PFX_PASSWORD),
        chain[0].public_bytes(serialization.Encoding.DER),
        issued.private_key_pem.bytes(),
    )


@pytest.fixture(scope="module")
def root() -> trustme.CA:
    return trustme.CA(organization_name="Frontend Root")


@pytest.fixture(scope="module")
def intermediate(root: trustme.CA) -> trustme.CA:
    return root.create_child_ca()


@pytest.fixture(scope="module")
def sites(intermediate: trustme.CA) -> dict[str, Site]:
    hosts = ("a.test", "b.test", "fallback.test")
    made = {host: make_site(intermediate, host) for host in hosts}
    made["rsa.test"] = make_site(intermediate, "rsa.test", trustme.KeyType.RSA)
    return made


# --- server and clients ---------------------------------------------------------------------------


class _Idle(asyncio.Protocol):
    """The handshake is all these tests need; the client closes right after it."""


@pytest.fixture(scope="module")
def server_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    # Failed handshakes are expected here; keep them out of the log.
    loop.set_exception_handler(lambda _loop, _context: None)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(HANDSHAKE_TIMEOUT)
    loop.close()


class _Hello(asyncio.Protocol):
    """Sends one byte: a client reading it takes in the TLS 1.3 tickets sent before it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is no asyncio.Transport subclass, but it writes as one.
        cast(asyncio.WriteTransport, transport).write(b"!")


@contextmanager
def serving(
    loop: asyncio.AbstractEventLoop,
    dispatcher: ssl.SSLContext,
    protocol: type[asyncio.Protocol] = _Idle,
) -> Iterator[int]:
    async def start() -> asyncio.AbstractServer:
        return await loop.create_server(protocol, "127.0.0.1", 0, ssl=dispatcher)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(HANDSHAKE_TIMEOUT)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:

        async def stop() -> None:
            server.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(HANDSHAKE_TIMEOUT)


def client_context(root: trustme.CA, *, verify_name: bool = True) -> ssl.SSLContext:
    """Trusts the root only: verification succeeds only if the server sends the intermediate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    root.configure_trust(context)
    context.check_hostname = verify_name
    return context


@dataclass(frozen=True)
class Handshake:
    leaf_der: bytes
    chain_length: int
    version: str | None
    cipher: str
    alpn: str | None


def handshake(port: int, server_name: str | None, context: ssl.SSLContext) -> Handshake:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        leaf = tls.getpeercert(binary_form=True)
        assert leaf is not None
        cipher = tls.cipher()
        assert cipher is not None
        return Handshake(
            leaf_der=leaf,
            chain_length=len(tls._sslobj.get_unverified_chain()),  # type: ignore[union-attr]
            version=tls.version(),
            cipher=cipher[0],
            alpn=tls.selected_alpn_protocol(),
        )


def memory_handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_name: str | None
) -> tuple[ssl.SSLError | None, ssl.SSLError | None]:
    """Run a handshake over memory BIOs; answers (server error, client error)."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    sides = {
        "client": (client.wrap_bio(client_in, client_out, server_hostname=server_name), server_in),
        "server": (server.wrap_bio(server_in, server_out, server_side=True), client_in),
    }
    errors: dict[str, ssl.SSLError | None] = {"server": None, "client": None}
    finished: set[str] = set()
    for _ in range(10):  # a TLS handshake needs a few flights; this bounds a broken one
        for name, (side, peer_incoming) in sides.items():
            if name not in finished and errors[name] is None:
                try:
                    side.do_handshake()
                    finished.add(name)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as error:
                    errors[name] = error
            outgoing = client_out if name == "client" else server_out
            peer_incoming.write(outgoing.read())
        if all(name in finished or errors[name] is not None for name in sides):
            break
    return errors["server"], errors["client"]


def handshake_fails(port: int, server_name: str | None, context: ssl.SSLContext) -> bool:
    try:
        handshake(port, server_name, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    return False


# --- SNI dispatch ---------------------------------------------------------------------------------

DEFAULT_POLICY = policy_from_model(None)


def selector_choose(
    entries: list[tuple[tuple[str, ...], bool, Site]], *, sku_v1: bool
) -> Callable[[str | None], ssl.SSLContext | None]:
    selector = CertificateSelector(
        [
            (hosts, require_sni, server_context(site.certificate, DEFAULT_POLICY))
            for hosts, require_sni, site in entries
        ],
        sku_v1=sku_v1,
    )
    return selector.select


def test_two_sites_on_one_port_get_their_own_full_chain(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    a, b = sites["a.test"], sites["b.test"]
    choose = selector_choose([(("a.test",), True, a), (("b.test",), True, b)], sku_v1=False)
    client = client_context(root)
    client.set_alpn_protocols(["h2", "http/1.1"])
    with serving(server_loop, dispatcher_context(DEFAULT_POLICY, choose)) as port:
        first = handshake(port, "a.test", client)
        second = handshake(port, "b.test", client)
    assert first.leaf_der == a.leaf_der
    assert second.leaf_der == b.leaf_der
    # Leaf + intermediate; the client trusts only the root, so verification proves it too.
    assert first.chain_length == second.chain_length == 2
    assert first.alpn == "http/1.1"


def test_sni_is_matched_without_regard_to_case(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    names: list[str | None] = []
    choose = selector_choose([(("a.test",), True, sites["a.test"])], sku_v1=True)

    def recording(name: str | None) -> ssl.SSLContext | None:
        names.append(name)
        return choose(name)

    with serving(server_loop, dispatcher_context(DEFAULT_POLICY, recording)) as port:
        result = handshake(port, "A.Test", client_context(root, verify_name=False))
    assert result.leaf_der == sites["a.test"].leaf_der
    assert names == ["a.test"]


def test_callback_runs_without_sni_and_falls_back_to_the_basic_listener(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    """Python calls sni_callback with server_name None when the ClientHello has no SNI."""
    names: list[str | None] = []
    choose = selector_choose(
        [(("a.test",), True, sites["a.test"]), ((), False, sites["fallback.test"])], sku_v1=True
    )

    def recording(name: str | None) -> ssl.SSLContext | None:
        names.append(name)
        return choose(name)

    with serving(server_loop, dispatcher_context(DEFAULT_POLICY, recording)) as port:
        without_sni = handshake(port, None, client_context(root, verify_name=False))
        unknown_sni = handshake(port, "other.test", client_context(root, verify_name=False))
    assert names == [None, "other.test"]
    assert without_sni.leaf_der == unknown_sni.leaf_der == sites["fallback.test"].leaf_der


def test_v2_without_sni_presents_the_first_listener(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    entries = [(("b.test",), True, sites["b.test"]), (("a.test",), True, sites["a.test"])]
    choose = selector_choose(entries, sku_v1=False)
    with serving(server_loop, dispatcher_context(DEFAULT_POLICY, choose)) as port:
        result = handshake(port, None, client_context(root, verify_name=False))
    assert result.leaf_der == sites["b.test"].leaf_der


def test_v1_when_every_listener_requires_sni_resets_unknown_and_missing_sni(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    entries = [(("a.test",), True, sites["a.test"]), (("b.test",), True, sites["b.test"])]
    dispatcher = dispatcher_context(DEFAULT_POLICY, selector_choose(entries, sku_v1=True))
    unverified = client_context(root, verify_name=False)
    unverified.verify_mode = ssl.CERT_NONE
    with serving(server_loop, dispatcher) as port:
        assert handshake_fails(port, "unknown.test", unverified)
        assert handshake_fails(port, None, unverified)
        assert handshake(port, "b.test", client_context(root)).leaf_der == sites["b.test"].leaf_der
    _, with_sni = memory_handshake(dispatcher, unverified, "unknown.test")
    _, without_sni = memory_handshake(dispatcher, unverified, None)
    assert with_sni is not None and with_sni.reason == "TLSV1_UNRECOGNIZED_NAME"
    assert without_sni is not None and without_sni.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_changing_what_choose_returns_changes_the_next_handshake(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    current = {"context": server_context(sites["a.test"].certificate, DEFAULT_POLICY)}
    dispatcher = dispatcher_context(DEFAULT_POLICY, lambda _name: current["context"])
    client = client_context(root, verify_name=False)
    with serving(server_loop, dispatcher) as port:
        before = handshake(port, "site.test", client)
        current["context"] = server_context(sites["b.test"].certificate, DEFAULT_POLICY)
        after = handshake(port, "site.test", client)
    assert before.leaf_der == sites["a.test"].leaf_der
    assert after.leaf_der == sites["b.test"].leaf_der


# --- policies on the wire -------------------------------------------------------------------------


def _policy(**fields: Any) -> TlsPolicy:
    return policy_from_model(SslPolicy.model_validate(fields))


def _single_site(site: Site, policy: TlsPolicy) -> ssl.SSLContext:
    context = server_context(site.certificate, policy)
    return dispatcher_context(policy, lambda _name: context)


def test_2022_policy_refuses_a_tls11_client(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    policy = _policy(policyType="Predefined", policyName="AppGwSslPolicy20220101")
    dispatcher = _single_site(sites["a.test"], policy)
    assert dispatcher.minimum_version == ssl.TLSVersion.TLSv1_2

    def relaxed_client(version: ssl.TLSVersion) -> ssl.SSLContext:
        context = client_context(root)
        with warnings.catch_warnings():  # TLSv1_1 is deprecated: that is the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        # Security level 0 lets the local OpenSSL offer TLS 1.1 at all.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        return context

    tls11 = relaxed_client(ssl.TLSVersion.TLSv1_1)
    with serving(server_loop, dispatcher) as port:
        assert handshake_fails(port, "a.test", tls11)
        # The same relaxed client succeeds at TLS 1.2: only the version was refused.
        assert handshake(port, "a.test", relaxed_client(ssl.TLSVersion.TLSv1_2)).version == (
            "TLSv1.2"
        )
    server_error, client_error = memory_handshake(dispatcher, tls11, "a.test")
    assert server_error is not None and server_error.reason == "UNSUPPORTED_PROTOCOL"
    assert client_error is not None and client_error.reason == "TLSV1_ALERT_PROTOCOL_VERSION"


def test_2022_policy_negotiates_tls13(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    with serving(server_loop, _single_site(sites["a.test"], DEFAULT_POLICY)) as port:
        assert handshake(port, "a.test", client_context(root)).version == "TLSv1.3"


def test_2017_strict_policy_negotiates_tls12_only(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    policy = _policy(policyType="Predefined", policyName="AppGwSslPolicy20170401S")
    client = client_context(root)
    assert client.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED  # offers TLS 1.3
    with serving(server_loop, _single_site(sites["a.test"], policy)) as port:
        result = handshake(port, "a.test", client)
    assert result.version == "TLSv1.2"
    assert result.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"  # the policy's first ECDSA suite


def test_custom_policy_with_one_suite_negotiates_exactly_that_suite(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    policy = _policy(
        policyType="Custom",
        minProtocolVersion="TLSv1_2",
        cipherSuites=["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
    )
    without_that_suite = client_context(root)
    without_that_suite.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA256")
    with serving(server_loop, _single_site(sites["rsa.test"], policy)) as port:
        result = handshake(port, "rsa.test", client_context(root))
        assert handshake_fails(port, "rsa.test", without_that_suite)
    assert (result.version, result.cipher) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")


def test_versions_follow_the_dispatcher_and_suites_the_certificate_context(
    server_loop: asyncio.AbstractEventLoop, root: trustme.CA, sites: dict[str, Site]
) -> None:
    """Why both contexts carry the policy: OpenSSL splits them across the SNI switch."""
    tls12_aes128 = TlsPolicy("A", _TLS_V12, _TLS_V12, "ECDHE-RSA-AES128-GCM-SHA256")
    tls13_aes256 = TlsPolicy("B", _TLS_V12, _TLS_V13, "ECDHE-RSA-AES256-GCM-SHA384")
    switched_to = server_context(sites["rsa.test"].certificate, tls13_aes256)
    dispatcher = dispatcher_context(tls12_aes128, lambda _name: switched_to)
    with serving(server_loop, dispatcher) as port:
        result = handshake(port, "rsa.test", client_context(root))
    assert (result.version, result.cipher) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")


# --- session tickets across SNI switches ------------------------------------------------------


def resumed_handshake(
    port: int, client: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[ssl.SSLSession, bool]:
    """A connection to a `_Hello` server: the session to offer next time, and whether this one
    resumed the offered session."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT) as raw,
        client.wrap_socket(raw, server_hostname="a.test", session=session) as tls,
    ):
        assert tls.recv(1) == b"!"
        assert tls.session is not None
        return tls.session, tls.session_reused


def certificate_context(site: Site, tmp_path: Path) -> ssl.SSLContext:
    """A certificate context of its own (server_context would share a memoized one)."""
    pem = tmp_path / f"{site.host}-{time.monotonic_ns()}.pem"
    pem.write_bytes(site.certificate.chain_pem() + site.key_pem)
    context = new_context(DEFAULT_POLICY)
    context.load_cert_chain(pem)
    return context


@pytest.mark.parametrize("version", [_TLS_V12, _TLS_V13], ids=["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("keys_on", ["dispatcher", "certificate context"])
def test_the_dispatchers_ticket_keys_are_the_ones_openssl_uses(
    server_loop: asyncio.AbstractEventLoop,
    root: trustme.CA,
    sites: dict[str, Site],
    tmp_path: Path,
    version: ssl.TLSVersion,
    keys_on: str,
) -> None:
    """Two listening sockets (as two workers) with independent dispatchers and certificate
    contexts: a ticket one issues resumes on the other when their dispatchers share keys, and
    not when only the certificate contexts the SNI callback switches to do."""
    keys = tickets.TicketKeys(os.urandom(tickets.SECRET_BYTES))
    ports = []
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            chosen = certificate_context(sites["a.test"], tmp_path)
            dispatcher = dispatcher_context(DEFAULT_POLICY, lambda _name, c=chosen: c)
            tickets.install(dispatcher if keys_on == "dispatcher" else chosen, keys)
            ports.append(stack.enter_context(serving(server_loop, dispatcher, _Hello)))
        client = client_context(root)
        client.maximum_version = version
        session, resumed = resumed_handshake(ports[0], client, None)
        assert not resumed
        _, resumed_on_first = resumed_handshake(ports[0], client, session)
        assert resumed_on_first  # a control: the same socket always resumes
        _, resumed_on_second = resumed_handshake(ports[1], client, session)
    assert resumed_on_second == (keys_on == "dispatcher")


def test_with_process_keys_every_new_context_shares_tickets(
    server_loop: asyncio.AbstractEventLoop,
    root: trustme.CA,
    sites: dict[str, Site],
    tmp_path: Path,
) -> None:
    """What a worker does: use_ticket_keys, then dispatchers made as the data plane makes them."""
    tls_server.use_ticket_keys(tickets.TicketKeys(os.urandom(tickets.SECRET_BYTES)))
    try:
        # Each with a certificate context of its own, as two workers have.
        chosen = [certificate_context(sites["a.test"], tmp_path) for _ in range(2)]
        contexts = [dispatcher_context(DEFAULT_POLICY, lambda _name, c=c: c) for c in chosen]
    finally:
        tls_server.use_ticket_keys(None)
    with (
        serving(server_loop, contexts[0], _Hello) as first,
        serving(server_loop, contexts[1], _Hello) as second,
    ):
        client = client_context(root)
        session, _ = resumed_handshake(first, client, None)
        assert resumed_handshake(second, client, session)[1]


def test_contexts_carry_the_hardening_options(sites: dict[str, Site]) -> None:
    policy = _policy(policyType="Predefined", policyName="AppGwSslPolicy20170401S")
    dispatcher = _single_site(sites["a.test"], policy)
    for context in (dispatcher, server_context(sites["a.test"].certificate, policy)):
        assert context.options & ssl.OP_NO_COMPRESSION
        assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
        assert context.options & ssl.OP_NO_RENEGOTIATION
        assert not context.options & ssl.OP_NO_TICKET
        assert context.maximum_version == ssl.TLSVersion.TLSv1_2


def test_retired_policies_clamp_to_tls12_without_deprecation_warnings(
    sites: dict[str, Site],
) -> None:
    policy = _policy(policyType="Predefined", policyName="AppGwSslPolicy20150501")
    assert policy.minimum_version == ssl.TLSVersion.TLSv1
    # pytest turns warnings into errors, so building the contexts is the check.
    assert _single_site(sites["b.test"], policy).minimum_version == ssl.TLSVersion.TLSv1_2


# --- memoization and key handling -----------------------------------------------------------------


def test_server_context_is_memoized_by_certificate_and_policy(
    intermediate: trustme.CA, sites: dict[str, Site]
) -> None:
    site = sites["a.test"]
    context = server_context(site.certificate, DEFAULT_POLICY)
    # Another configuration version loads the same PFX again: same context, same ticket keys.
    reloaded = ListenerCertificate(
        site.certificate.private_key, site.certificate.leaf, site.certificate.chain
    )
    assert server_context(reloaded, DEFAULT_POLICY) is context
    assert server_context(reloaded, policy_from_model(None)) is context  # equal policy
    strict = _policy(policyType="Predefined", policyName="AppGwSslPolicy20220101S")
    assert server_context(site.certificate, strict) is not context
    assert server_context(sites["b.test"].certificate, DEFAULT_POLICY) is not context
    # Same leaf and key, different chain (a re-upload that adds the intermediate): new context.
    leaf_only = ListenerCertificate(site.certificate.private_key, site.certificate.leaf, ())
    assert server_context(leaf_only, DEFAULT_POLICY) is not context
    # Contexts no configuration holds any more are released.
    fresh = server_context(make_site(intermediate, "short.test").certificate, DEFAULT_POLICY)
    released = weakref.ref(fresh)
    del fresh
    gc.collect()
    assert released() is None


def _files_changed_since(root: Path, since_ns: int, *, skip_hidden: bool) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(root, onerror=lambda _error: None):
        if skip_hidden:
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in files:
            path = Path(directory, name)
            try:
                status = path.lstat()
            except OSError:
                continue
            if path.is_file() and status.st_mtime_ns >= since_ns:
                yield path


def _open_file_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used is gone already
            continue
    return targets


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_no_plaintext_key_file_is_written(
    intermediate: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_cwd = Path.cwd()
    work, private_tmp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    private_tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    loaded_from: list[str] = []
    load_cert_chain = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, *args: Any, **kwargs: Any) -> None:
        loaded_from.append(str(certfile))
        load_cert_chain(self, certfile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    since_ns = time.time_ns() - 1_000_000_000  # file systems with coarse timestamps
    site = make_site(intermediate, "secret.test")  # a fresh key: nothing memoized yet
    context = server_context(site.certificate, DEFAULT_POLICY)
    dispatcher_context(DEFAULT_POLICY, lambda _name: context)

    assert loaded_from and all(path.startswith("/proc/self/fd/") for path in loaded_from)
    assert not [target for target in _open_file_targets() if "memfd:" in target]
    # Directories only this test uses: no private key of any kind.
    for path in _files_changed_since(tmp_path, 0, skip_hidden=False):
        assert b"PRIVATE KEY" not in _read(path), path
    # Shared directories (other test runs write keys there too): not this key.
    key_line = site.key_pem.splitlines()[1]
    for root in (Path("/tmp"), original_cwd):
        for path in _files_changed_since(root, since_ns, skip_hidden=root == original_cwd):
            content = _read(path)
            assert not (b"PRIVATE KEY" in content and key_line in content), path


# --- policy_from_model ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "minimum", "maximum", "count", "first", "last"),
    [
        (
            SslPolicyName.POLICY_20150501,
            _TLS_V1,
            _TLS_V12,
            28,
            "ECDHE-RSA-AES256-GCM-SHA384",
            "DHE-DSS-DES-CBC3-SHA",
        ),
        (
            SslPolicyName.POLICY_20170401,
            _TLS_V11,
            _TLS_V12,
            16,
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "AES128-SHA",
        ),
        (
            SslPolicyName.POLICY_20170401S,
            _TLS_V12,
            _TLS_V12,
            16,
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "AES128-SHA",
        ),
        (
            SslPolicyName.POLICY_20220101,
            _TLS_V12,
            _TLS_V13,
            8,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-SHA256",
        ),
        (
            SslPolicyName.POLICY_20220101S,
            _TLS_V12,
            _TLS_V13,
            4,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ),
    ],
)
def test_predefined_policies(
    name: SslPolicyName,
    minimum: ssl.TLSVersion,
    maximum: ssl.TLSVersion,
    count: int,
    first: str,
    last: str,
) -> None:
    policy = _policy(policyType="Predefined", policyName=name.value)
    suites = policy.openssl_ciphers.split(":")
    assert (policy.name, policy.minimum_version, policy.maximum_version) == (
        name.value,
        minimum,
        maximum,
    )
    assert (len(suites), suites[0], suites[-1]) == (count, first, last)
    assert not [suite for suite in suites if suite.startswith("TLS_")]  # 1.3 suites are implicit
    assert _policy(policyName=name.value) == policy  # policyType may be left out


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {
                "policyType": "Custom",
                "minProtocolVersion": "TLSv1_2",
                "cipherSuites": [
                    "TLS_RSA_WITH_AES_128_GCM_SHA256",
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                ],
            },
            TlsPolicy(
                "Custom", _TLS_V12, _TLS_V12, "AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
            ),
        ),
        (
            {"policyType": "CustomV2", "minProtocolVersion": "TLSv1_3", "cipherSuites": []},
            TlsPolicy("CustomV2", _TLS_V13, _TLS_V13, ""),
        ),
        (
            {"policyType": "CustomV2", "minProtocolVersion": "TLSv1_3"},
            TlsPolicy("CustomV2", _TLS_V13, _TLS_V13, ""),
        ),
        (
            {
                "policyType": "CustomV2",
                "minProtocolVersion": "TLSv1_2",
                "cipherSuites": [
                    "TLS_AES_128_GCM_SHA256",
                    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                ],
            },
            TlsPolicy(
                "CustomV2",
                _TLS_V12,
                _TLS_V13,
                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
            ),
        ),
    ],
)
def test_custom_policies(fields: dict[str, Any], expected: TlsPolicy) -> None:
    assert _policy(**fields) == expected


@pytest.mark.parametrize(
    ("disabled", "minimum", "maximum"),
    [
        (["TLSv1_0", "TLSv1_1"], _TLS_V12, _TLS_V12),
        (["TLSv1_0"], _TLS_V11, _TLS_V12),
        (["TLSv1_2"], _TLS_V1, _TLS_V11),
    ],
)
def test_legacy_disabled_protocols(
    disabled: list[str], minimum: ssl.TLSVersion, maximum: ssl.TLSVersion
) -> None:
    policy = _policy(disabledSslProtocols=disabled)
    base = _policy(policyName="AppGwSslPolicy20150501")
    assert (policy.name, policy.minimum_version, policy.maximum_version) == (
        "Legacy",
        minimum,
        maximum,
    )
    assert policy.openssl_ciphers == base.openssl_ciphers


def test_absent_or_empty_policy_is_azures_current_default() -> None:
    default = _policy(policyName="AppGwSslPolicy20220101")
    assert policy_from_model(None) == default
    assert _policy() == default
    assert _policy(disabledSslProtocols=[]) == default
    assert hash(policy_from_model(None)) == hash(default)


@pytest.mark.parametrize(
    "fields",
    [
        {"policyType": "Custom", "minProtocolVersion": "TLSv1_2", "cipherSuites": []},
        {"disabledSslProtocols": ["TLSv1_0", "TLSv1_1", "TLSv1_2"]},
        {"policyType": "Predefined"},
    ],
)
def test_policies_that_cannot_negotiate_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _policy(**fields)


# IANA code points, to check the name table against the local OpenSSL independently.
_IANA_CODES = {
    C.RSA_3DES_EDE_CBC_SHA: 0x000A,
    C.DHE_DSS_3DES_EDE_CBC_SHA: 0x0013,
    C.RSA_AES_128_CBC_SHA: 0x002F,
    C.DHE_DSS_AES_128_CBC_SHA: 0x0032,
    C.DHE_RSA_AES_128_CBC_SHA: 0x0033,
    C.RSA_AES_256_CBC_SHA: 0x0035,
    C.DHE_DSS_AES_256_CBC_SHA: 0x0038,
    C.DHE_RSA_AES_256_CBC_SHA: 0x0039,
    C.RSA_AES_128_CBC_SHA256: 0x003C,
    C.RSA_AES_256_CBC_SHA256: 0x003D,
    C.DHE_DSS_AES_128_CBC_SHA256: 0x0040,
    C.DHE_DSS_AES_256_CBC_SHA256: 0x006A,
    C.RSA_AES_128_GCM_SHA256: 0x009C,
    C.RSA_AES_256_GCM_SHA384: 0x009D,
    C.DHE_RSA_AES_128_GCM_SHA256: 0x009E,
    C.DHE_RSA_AES_256_GCM_SHA384: 0x009F,
    C.ECDHE_ECDSA_AES_128_CBC_SHA: 0xC009,
    C.ECDHE_ECDSA_AES_256_CBC_SHA: 0xC00A,
    C.ECDHE_RSA_AES_128_CBC_SHA: 0xC013,
    C.ECDHE_RSA_AES_256_CBC_SHA: 0xC014,
    C.ECDHE_ECDSA_AES_128_CBC_SHA256: 0xC023,
    C.ECDHE_ECDSA_AES_256_CBC_SHA384: 0xC024,
    C.ECDHE_RSA_AES_128_CBC_SHA256: 0xC027,
    C.ECDHE_RSA_AES_256_CBC_SHA384: 0xC028,
    C.ECDHE_ECDSA_AES_128_GCM_SHA256: 0xC02B,
    C.ECDHE_ECDSA_AES_256_GCM_SHA384: 0xC02C,
    C.ECDHE_RSA_AES_128_GCM_SHA256: 0xC02F,
    C.ECDHE_RSA_AES_256_GCM_SHA384: 0xC030,
}


def test_every_azure_suite_has_an_openssl_name() -> None:
    assert set(OPENSSL_CIPHER_NAMES) == set(C)
    assert [s for s, n in OPENSSL_CIPHER_NAMES.items() if n is None] == [
        C.TLS_AES_128_GCM_SHA256,
        C.TLS_AES_256_GCM_SHA384,
    ]
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.set_ciphers("ALL:@SECLEVEL=0")
    local_codes = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in probe.get_ciphers()}
    checked = 0
    for suite, code in _IANA_CODES.items():
        name = OPENSSL_CIPHER_NAMES[suite]
        if name in local_codes:  # builds without 3DES lack two of them
            assert local_codes[name] == code, suite
            checked += 1
    assert checked >= 26
