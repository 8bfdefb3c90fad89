"""Mutual TLS on listeners: ask clients for a certificate, and judge the one they send.

A listener whose SSL profile has trusted client certificates asks every client for a
certificate (the CertificateRequest names the uploaded CAs). The handshake accepts whatever
comes, or nothing, like nginx's `ssl_verify_client optional_no_ca`; the certificate is judged
right after the handshake, before any request is read, against the profile's CAs (OpenSSL's
chain verification, with expiry), the issuer DN when asked, and revocation. A request on that
listener with no certificate or a refused one is answered 400, as Azure does, with the reason
in the access log's error_info and the `client_certificate_verification` server variable
(`SUCCESS`, `FAILED:<reason>` or `NONE`).

Python's ssl module can neither accept a certificate it does not verify nor change a
connection's verify mode from the SNI callback (where the listener, and so its profile, is
chosen), so both go through ctypes (tls/libssl.py): the listener context gets a certificate
verification callback that accepts, and the dispatcher turns on SSL_VERIFY_PEER for each
connection it switches to such a context (OpenSSL's SSL_set_SSL_CTX does not copy the verify
mode; nginx does the same in its SNI callback).
"""

from __future__ import annotations

import ctypes
import hashlib
import ssl
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from OpenSSL import crypto

from appgw.tls import libssl
from appgw.tls.revocation import REVOKED, RevocationAnswer, RevocationQuery, query_for

# OpenSSL constants (ssl.h; stable ABI).
_SSL_VERIFY_PEER = 0x01
# A client sends few certificates: past this many the chain is refused unread (a bound on the
# work one handshake can cause).
MAX_CLIENT_CHAIN = 10

# int cb(X509_STORE_CTX *ctx, void *arg): replaces OpenSSL's chain verification in the handshake.
_CERT_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def _accept(_store_context: int, _arg: int) -> int:
    return 1  # judged after the handshake (judge), where the reason can be told


_accept_callback = _CERT_VERIFY_CALLBACK(_accept)  # kept for the life of the process

# Verification outcomes as the `client_certificate_verification` server variable shows them.
NONE = "NONE"
SUCCESS = "SUCCESS"


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """What an SSL profile asks of clients. Hashable: part of a listener context's key."""

    trusted_der: tuple[bytes, ...]  # the uploaded CA certificates (roots and intermediates)
    issuer_dns: tuple[str, ...] = ()  # verifyClientCertIssuerDN: the leaf's issuer, one of
    verify_chain: bool = True  # Strict; False: Passthrough (asked for, passed on, not judged)
    ocsp: bool = False  # verifyClientRevocation: OCSP

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_der", tuple(sorted(set(self.trusted_der))))
        object.__setattr__(self, "issuer_dns", tuple(sorted(set(self.issuer_dns))))


@dataclass(frozen=True, slots=True)
class ClientVerdict:
    """A connection's client certificate, judged."""

    verification: str  # SUCCESS, FAILED:<reason> or NONE
    error_info: str  # the access log's code when a request is refused for it
    variables: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.verification == SUCCESS


NO_CERTIFICATE = ClientVerdict(
    NONE,
    "ERRORINFO_CLIENT_CERTIFICATE_MISSING",
    {"client_certificate_verification": NONE},
)


# --- the handshake ------------------------------------------------------------------------------

# Contexts that ask for client certificates, and the connections switched to them get
# SSL_VERIFY_PEER (weak: a context lives as long as some configuration uses it).
_asking: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
_lock = threading.Lock()


def ask_for_certificates(context: ssl.SSLContext, auth: ClientAuth) -> None:
    """Make `context` ask clients for a certificate naming the profile's CAs, and accept any
    in the handshake. Raises libssl.LibSslUnavailable."""
    pointer = libssl.ssl_ctx_pointer(context)
    set_callback = libssl.function(
        "SSL_CTX_set_cert_verify_callback",
        None,
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p],
    )
    set_verify = libssl.function(
        "SSL_CTX_set_verify", None, [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    )
    add_client_ca = libssl.function(
        "SSL_CTX_add_client_CA", ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]
    )
    d2i_x509 = libssl.function(
        "d2i_X509", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]
    )
    x509_free = libssl.function("X509_free", None, [ctypes.c_void_p])
    set_callback(pointer, ctypes.cast(_accept_callback, ctypes.c_void_p).value, None)
    set_verify(pointer, _SSL_VERIFY_PEER, None)
    for der in auth.trusted_der:
        buffer = ctypes.create_string_buffer(der, len(der))
        cursor = ctypes.c_void_p(ctypes.addressof(buffer))
        certificate = d2i_x509(None, ctypes.byref(cursor), len(der))
        if certificate:
            add_client_ca(pointer, certificate)  # copies the name
            x509_free(certificate)
    with _lock:
        _asking.add(context)


def switched_to(connection: ssl.SSLObject | ssl.SSLSocket, context: ssl.SSLContext) -> None:
    """The SNI dispatcher switched `connection` to `context`: ask for a certificate if the
    context does. Raises libssl.LibSslUnavailable (the dispatcher then refuses the
    handshake: a listener that requires client certificates is never served without)."""
    if context not in _asking:
        return
    set_verify = libssl.function(
        "SSL_set_verify", None, [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    )
    set_verify(libssl.ssl_pointer(connection), _SSL_VERIFY_PEER, None)


# --- after the handshake -------------------------------------------------------------------------


# Verdicts remembered per (chain, profile): a client's next connections (most clients make
# several) cost a dictionary lookup instead of a chain verification (~1 ms). Bounded in number
# and in time; never past the leaf's expiry.
VERDICT_CACHE_ENTRIES = 4096
VERDICT_CACHE_SECONDS = 300
REFUSAL_CACHE_SECONDS = 30
_verdicts: OrderedDict[tuple[bytes, ClientAuth], tuple[ClientVerdict, datetime]] = OrderedDict()
_verdicts_lock = threading.Lock()


def judge_chain(
    chain_der: Sequence[bytes], auth: ClientAuth, now: datetime | None = None
) -> ClientVerdict:
    """The client certificate chain of a finished handshake (tls/client.py's
    presented_chain) under `auth`; revocation is with_revocation's, after a fetch."""
    moment = now or datetime.now(UTC)
    key = (chain_digest(chain_der), auth)
    with _verdicts_lock:
        kept = _verdicts.get(key)
        if kept is not None and kept[1] > moment:
            _verdicts.move_to_end(key)
            return kept[0]
    verdict, leaf_expiry = _judged(chain_der, auth, moment)
    # A refusal is kept briefly: a certificate not yet valid becomes valid, a fixed clock too.
    seconds = VERDICT_CACHE_SECONDS if verdict.ok else REFUSAL_CACHE_SECONDS
    until = min(moment + timedelta(seconds=seconds), leaf_expiry or moment)
    with _verdicts_lock:
        _verdicts[key] = (verdict, until)
        while len(_verdicts) > VERDICT_CACHE_ENTRIES:
            _verdicts.popitem(last=False)
    return verdict


def _judged(
    chain_der: Sequence[bytes], auth: ClientAuth, now: datetime
) -> tuple[ClientVerdict, datetime | None]:
    """The verdict, and the leaf's expiry (None: not a certificate)."""
    if not chain_der:
        return NO_CERTIFICATE, None
    verdict = _verdict_of(chain_der, auth, now)
    try:
        expiry = x509.load_der_x509_certificate(chain_der[0]).not_valid_after_utc
    except ValueError:
        expiry = None
    return verdict, expiry


def _verdict_of(chain_der: Sequence[bytes], auth: ClientAuth, now: datetime) -> ClientVerdict:
    if not chain_der:
        return NO_CERTIFICATE
    if len(chain_der) > MAX_CLIENT_CHAIN:
        return _failed(f"the client sent {len(chain_der)} certificates", {})
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        return _failed("the client certificate is not a valid X.509 certificate", {})
    leaf = certificates[0]
    variables = certificate_variables(leaf)
    if not auth.verify_chain:
        return _verdict(SUCCESS, "ERRORINFO_NO_ERROR", variables)
    problem = _chain_problem(certificates, auth, now)
    if problem is not None:
        return _failed(problem, variables)
    if auth.issuer_dns and leaf.issuer.rfc4514_string() not in auth.issuer_dns:
        return _failed(
            f"issuer DN mismatch ({leaf.issuer.rfc4514_string()})",
            variables,
            "ERRORINFO_CLIENT_CERTIFICATE_ISSUER_DN_MISMATCH",
        )
    return _verdict(SUCCESS, "ERRORINFO_NO_ERROR", variables)


def _chain_problem(
    certificates: list[x509.Certificate], auth: ClientAuth, now: datetime | None
) -> str | None:
    """OpenSSL's verification of the client's chain to one of the profile's roots; the
    profile's intermediates help build it. None when it verifies."""
    store = crypto.X509Store()
    untrusted = [crypto.X509.from_cryptography(cert) for cert in certificates[1:]]
    for der in auth.trusted_der:
        uploaded = x509.load_der_x509_certificate(der)
        if uploaded.issuer == uploaded.subject:
            store.add_cert(crypto.X509.from_cryptography(uploaded))
        else:
            untrusted.append(crypto.X509.from_cryptography(uploaded))
    store.set_time(now or datetime.now(UTC))
    context = crypto.X509StoreContext(
        store, crypto.X509.from_cryptography(certificates[0]), chain=untrusted
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as error:
        return str(error.errors[2])
    except crypto.Error as error:
        return f"verification failed ({error})"
    return None


def certificate_variables(leaf: x509.Certificate) -> dict[str, str]:
    """Azure's client_certificate_* server variables (rewrite rules, access log)."""
    return {
        # PEM on one line, its lines joined by spaces: a header cannot hold a line break, and
        # this is what a backend behind Azure's gateway (nginx, whose multi-line PEM variable
        # is folded) ends up reading.
        "client_certificate": " ".join(
            leaf.public_bytes(serialization.Encoding.PEM).decode("ascii").split()
        ),
        "client_certificate_end_date": _nginx_time(leaf.not_valid_after_utc),
        "client_certificate_start_date": _nginx_time(leaf.not_valid_before_utc),
        "client_certificate_fingerprint": leaf.fingerprint(hashes.SHA1()).hex(),
        "client_certificate_issuer": leaf.issuer.rfc4514_string(),
        "client_certificate_subject": leaf.subject.rfc4514_string(),
        "client_certificate_serial": f"{leaf.serial_number:X}",
    }


def _nginx_time(moment: datetime) -> str:
    """As nginx's $ssl_client_v_end (Azure's gateway is nginx): 'Dec  3 08:56:25 2027 GMT'."""
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def _failed(
    reason: str,
    variables: dict[str, str],
    error_info: str = "ERRORINFO_CLIENT_CERTIFICATE_INVALID",
) -> ClientVerdict:
    return _verdict(f"FAILED:{reason}", error_info, variables)


def _verdict(verification: str, error_info: str, variables: dict[str, str]) -> ClientVerdict:
    return ClientVerdict(
        verification,
        error_info,
        {**variables, "client_certificate_verification": verification},
    )


def issuer_dn_of_upload(certificates: Sequence[x509.Certificate]) -> str:
    """Azure's clientCertIssuerDN of an uploaded chain: the subject of the certificate that
    issues client certificates, the one of the upload that issued none of the others (the
    deepest intermediate, or the root of a root-only upload)."""
    for cert in certificates:
        if not any(
            other is not cert and other.issuer == cert.subject and other.issuer != other.subject
            for other in certificates
        ):
            return cert.subject.rfc4514_string()
    return certificates[-1].subject.rfc4514_string()


def chain_digest(chain_der: Sequence[bytes]) -> bytes:
    digest = hashlib.sha256()
    for der in chain_der:
        digest.update(hashlib.sha256(der).digest())
    return digest.digest()


def revocation_query(chain_der: Sequence[bytes], auth: ClientAuth) -> RevocationQuery | None:
    """What to ask about a judged chain's leaf (None: its issuer is unknown)."""
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
        trusted = [x509.load_der_x509_certificate(der) for der in auth.trusted_der]
        return query_for(chain, trusted)
    except ValueError:
        return None


def with_revocation(verdict: ClientVerdict, answer: RevocationAnswer) -> ClientVerdict:
    """A verdict that passed the chain and DN checks, after the revocation check: Azure
    answers 400 for a revoked certificate and for one whose status cannot be learnt."""
    if answer.good:
        return verdict
    if answer.status == REVOKED:
        return _failed(
            "certificate revoked", verdict.variables, "ERRORINFO_CLIENT_CERTIFICATE_REVOKED"
        )
    return _failed(
        f"revocation status unknown: {answer.status}",
        verdict.variables,
        "ERRORINFO_CLIENT_CERTIFICATE_REVOCATION_UNKNOWN",
    )
