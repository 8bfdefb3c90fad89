"""Client-facing TLS: Azure TLS policies as OpenSSL settings, and the server contexts listeners use.

Certificate contexts are shared and memoized, so a new configuration version that keeps a
certificate keeps its context. The data plane switches each connection to one of them from its
SNI dispatcher (`appgw.dataplane.sni`).

Python's ssl module cannot set the TLS 1.3 suites or the key-exchange groups of a context (no
SSL_CTX_set_ciphersuites, set_ecdh_curve takes one curve). Every Azure policy allows the same
ones, so the data-plane processes get them from OpenSSL's configuration instead: `appgw serve`
starts them with OPENSSL_CONF set to `OPENSSL_CONFIG` (TLS_AES_256_GCM_SHA384 and
TLS_AES_128_GCM_SHA256; X25519, P-256, P-384).
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from appgw.model.enums import SslCipherSuite as C, SslPolicyName, SslPolicyType, SslProtocol
from appgw.model.ssl_policies import PREDEFINED_POLICIES, PredefinedPolicy
from appgw.tls import tickets
from appgw.tls.client_auth import ClientAuth, ask_for_certificates
from appgw.tls.libssl import LibSslUnavailable

if TYPE_CHECKING:
    from appgw.certificates import ListenerCertificate
    from appgw.model.resource import SslPolicy

# The OpenSSL configuration of the data-plane processes (see the module docstring).
OPENSSL_CONFIG = Path(__file__).with_name("openssl.cnf")

__all__ = [
    "DEFAULT_POLICY_NAME",
    "OPENSSL_CIPHER_NAMES",
    "OPENSSL_CONFIG",
    "TlsPolicy",
    "new_context",
    "policy_allows",
    "policy_from_model",
    "server_context",
    "use_ticket_keys",
]

log = logging.getLogger("appgw.tls")

# Azure's default for gateways created with API >= 2023-02-01 (spec §4.2).
DEFAULT_POLICY_NAME = SslPolicyName.POLICY_20220101
# Before `policyType` existed, a gateway disabled protocols of the then-default policy (§4.2).
_LEGACY_BASE_POLICY = SslPolicyName.POLICY_20150501
_LEGACY_POLICY_NAME = "Legacy"
# Validation requires minProtocolVersion on custom policies; should it be missing anyway, take
# the lowest version Azure still accepts after the TLS 1.0/1.1 retirement.
_CUSTOM_MINIMUM_FALLBACK = SslProtocol.TLS_1_2
# OpenSSL 3 refuses TLS 1.0/1.1 at security level >= 1 (their handshake signatures use SHA-1)
# and Python's contexts run at level 2, so a lower minimum never negotiates; clamping states
# the effective floor and avoids ssl's DeprecationWarning for TLSv1/TLSv1_1.
_EFFECTIVE_MINIMUM_FLOOR = ssl.TLSVersion.TLSv1_2
# What ALPN offers: http/1.1 alone lets ALPN-only clients proceed; a gateway with enableHttp2
# offers h2 first (the server's preference wins in Python's ALPN callback).
_ALPN_HTTP1 = ["http/1.1"]
_ALPN_HTTP2 = ["h2", "http/1.1"]
# Client-initiated renegotiation costs the server a handshake per request: a DoS lever.
_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0)

_TLS_VERSIONS: dict[SslProtocol, ssl.TLSVersion] = {
    SslProtocol.TLS_1_0: ssl.TLSVersion.TLSv1,
    SslProtocol.TLS_1_1: ssl.TLSVersion.TLSv1_1,
    SslProtocol.TLS_1_2: ssl.TLSVersion.TLSv1_2,
    SslProtocol.TLS_1_3: ssl.TLSVersion.TLSv1_3,
}
_LEGACY_PROTOCOLS = (SslProtocol.TLS_1_0, SslProtocol.TLS_1_1, SslProtocol.TLS_1_2)

# Azure (IANA) suite name -> OpenSSL name; None: a TLS 1.3 suite, implicit whenever 1.3 is on.
OPENSSL_CIPHER_NAMES: dict[C, str | None] = {
    C.ECDHE_RSA_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
    C.ECDHE_RSA_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
    C.ECDHE_RSA_AES_256_CBC_SHA384: "ECDHE-RSA-AES256-SHA384",
    C.ECDHE_RSA_AES_128_CBC_SHA256: "ECDHE-RSA-AES128-SHA256",
    C.ECDHE_RSA_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
    C.ECDHE_RSA_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
    C.DHE_RSA_AES_256_GCM_SHA384: "DHE-RSA-AES256-GCM-SHA384",
    C.DHE_RSA_AES_128_GCM_SHA256: "DHE-RSA-AES128-GCM-SHA256",
    C.DHE_RSA_AES_256_CBC_SHA: "DHE-RSA-AES256-SHA",
    C.DHE_RSA_AES_128_CBC_SHA: "DHE-RSA-AES128-SHA",
    C.RSA_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
    C.RSA_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
    C.RSA_AES_256_CBC_SHA256: "AES256-SHA256",
    C.RSA_AES_128_CBC_SHA256: "AES128-SHA256",
    C.RSA_AES_256_CBC_SHA: "AES256-SHA",
    C.RSA_AES_128_CBC_SHA: "AES128-SHA",
    C.ECDHE_ECDSA_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
    C.ECDHE_ECDSA_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
    C.ECDHE_ECDSA_AES_256_CBC_SHA384: "ECDHE-ECDSA-AES256-SHA384",
    C.ECDHE_ECDSA_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
    C.ECDHE_ECDSA_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
    C.ECDHE_ECDSA_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
    C.DHE_DSS_AES_256_CBC_SHA256: "DHE-DSS-AES256-SHA256",
    C.DHE_DSS_AES_128_CBC_SHA256: "DHE-DSS-AES128-SHA256",
    C.DHE_DSS_AES_256_CBC_SHA: "DHE-DSS-AES256-SHA",
    C.DHE_DSS_AES_128_CBC_SHA: "DHE-DSS-AES128-SHA",
    C.RSA_3DES_EDE_CBC_SHA: "DES-CBC3-SHA",
    C.DHE_DSS_3DES_EDE_CBC_SHA: "DHE-DSS-DES-CBC3-SHA",
    C.TLS_AES_128_GCM_SHA256: None,
    C.TLS_AES_256_GCM_SHA384: None,
}


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """What a gateway's sslPolicy means for OpenSSL. Hashable (memoization key)."""

    name: str  # "AppGwSslPolicy20220101", ..., "Custom", "CustomV2" or "Legacy"
    minimum_version: ssl.TLSVersion
    maximum_version: ssl.TLSVersion  # TLSv1_3 unless the policy excludes it
    # TLS <= 1.2 suites in Azure's preference order, OpenSSL names joined by ':'.
    openssl_ciphers: str


def policy_from_model(ssl_policy: SslPolicy | None) -> TlsPolicy:
    """Map a gateway's (or SSL profile's) `sslPolicy` to OpenSSL terms.

    Predefined names come from PREDEFINED_POLICIES; Custom/CustomV2 from minProtocolVersion and
    cipherSuites (Custom stops at TLS 1.2, CustomV2 always allows 1.3); a legacy
    `disabledSslProtocols` list disables protocols of AppGwSslPolicy20150501; None (or an empty
    policy) is AppGwSslPolicy20220101. Raises ValueError for a policy that can negotiate nothing.
    """
    if ssl_policy is None:
        return _predefined(PREDEFINED_POLICIES[DEFAULT_POLICY_NAME])
    kind = ssl_policy.policy_type
    if kind is None and ssl_policy.policy_name is not None:
        kind = SslPolicyType.PREDEFINED
    if kind == SslPolicyType.PREDEFINED:
        if ssl_policy.policy_name is None:
            raise ValueError("a Predefined policy needs 'policyName'")
        return _predefined(PREDEFINED_POLICIES[ssl_policy.policy_name])
    if kind in (SslPolicyType.CUSTOM, SslPolicyType.CUSTOM_V2):
        minimum = ssl_policy.min_protocol_version or _CUSTOM_MINIMUM_FALLBACK
        maximum = SslProtocol.TLS_1_3 if kind == SslPolicyType.CUSTOM_V2 else SslProtocol.TLS_1_2
        return _checked(kind.value, minimum, maximum, ssl_policy.cipher_suites or ())
    disabled = set(ssl_policy.disabled_ssl_protocols or ())
    if not disabled:
        return _predefined(PREDEFINED_POLICIES[DEFAULT_POLICY_NAME])
    enabled = [protocol for protocol in _LEGACY_PROTOCOLS if protocol not in disabled]
    if not enabled:
        raise ValueError("'disabledSslProtocols' disables every protocol the policy has")
    # A hole (1.0 and 1.2 on, 1.1 off) cannot be expressed with minimum/maximum; the range
    # spans it. Validation requires 1.0 and 1.1 off, which leaves no hole.
    base = PREDEFINED_POLICIES[_LEGACY_BASE_POLICY]
    return _checked(_LEGACY_POLICY_NAME, enabled[0], enabled[-1], base.cipher_suites)


def policy_allows(policy: TlsPolicy, version: str) -> bool:
    """Whether a negotiated version ("TLSv1.2", as SSLObject.version() says) is in range."""
    try:
        negotiated = ssl.TLSVersion[version.replace(".", "_")]
    except KeyError:
        return False
    return policy.minimum_version <= negotiated <= policy.maximum_version


def _predefined(policy: PredefinedPolicy) -> TlsPolicy:
    # The 2022 generation is the one that includes TLS 1.3 (spec §4.3).
    has_tls13 = any(OPENSSL_CIPHER_NAMES[suite] is None for suite in policy.cipher_suites)
    maximum = SslProtocol.TLS_1_3 if has_tls13 else SslProtocol.TLS_1_2
    return _checked(policy.name.value, policy.min_protocol_version, maximum, policy.cipher_suites)


def _checked(
    name: str, minimum: SslProtocol, maximum: SslProtocol, suites: Sequence[C]
) -> TlsPolicy:
    names = [OPENSSL_CIPHER_NAMES[suite] for suite in suites]
    policy = TlsPolicy(
        name=name,
        minimum_version=_TLS_VERSIONS[minimum],
        maximum_version=_TLS_VERSIONS[maximum],
        openssl_ciphers=":".join(dict.fromkeys(n for n in names if n is not None)),
    )
    if not policy.openssl_ciphers and policy.minimum_version < ssl.TLSVersion.TLSv1_3:
        raise ValueError(f"policy {name!r} allows TLS 1.2 or lower but lists no suite for it")
    return policy


# Certificate contexts by (certificate fingerprint, policy). Weak values: a context lives as
# long as some configuration snapshot uses it, and a new snapshot compiled while the running
# one still holds it gets the same object back. No size bound is needed that way.
_server_contexts: weakref.WeakValueDictionary[
    tuple[bytes, TlsPolicy, ClientAuth | None, bool], ssl.SSLContext
] = weakref.WeakValueDictionary()
_server_contexts_lock = threading.Lock()


def server_context(
    certificate: ListenerCertificate,
    policy: TlsPolicy,
    client_auth: ClientAuth | None = None,
    *,
    http2: bool = False,
) -> ssl.SSLContext:
    """A server context presenting the certificate's full chain (leaf + intermediates) under
    the policy, asking clients for a certificate when an SSL profile's `client_auth` says so
    (tls/client_auth.py), offering h2 in ALPN when `http2`; memoized (see _server_contexts).

    The key and chain reach OpenSSL through an anonymous memory file (memfd), never a file on
    disk. Raises ssl.SSLError when the local OpenSSL supports none of the policy's suites.
    Session tickets: for connections switched here by a dispatcher, OpenSSL encrypts tickets
    with the dispatcher's keys (the session context stays the listening socket's context);
    this context gets the shared keys too (use_ticket_keys), should it ever listen itself.
    """
    key = (_fingerprint(certificate), policy, client_auth, http2)
    with _server_contexts_lock:
        context = _server_contexts.get(key)
        if context is None:
            context = new_context(policy, http2=http2)
            _load_chain_in_memory(context, certificate)
            if client_auth is not None:
                try:
                    ask_for_certificates(context, client_auth)
                except LibSslUnavailable as error:
                    raise ssl.SSLError(
                        f"client certificates cannot be requested in this process: {error}"
                    ) from None
            _server_contexts[key] = context
    return context


def _fingerprint(certificate: ListenerCertificate) -> bytes:
    """SHA-256 over the chain and the key: a re-upload with another chain or key is new."""
    digest = hashlib.sha256()
    for cert in certificate.full_chain():
        digest.update(cert.public_bytes(serialization.Encoding.DER))  # DER is self-delimiting
    digest.update(
        certificate.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return digest.digest()


def _load_chain_in_memory(context: ssl.SSLContext, certificate: ListenerCertificate) -> None:
    # OpenSSL's loaders take paths; /proc/self/fd/N of a memfd is a path with no disk behind it.
    fd = os.memfd_create("appgw-listener-certificate", os.MFD_CLOEXEC)
    try:
        _write_all(fd, certificate.chain_pem() + certificate.private_key_pem())
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# The session-ticket keys every server context of this process gets (None: OpenSSL's own,
# random per context). Set once at start, before any context is made (use_ticket_keys).
_ticket_keys: tickets.TicketKeys | None = None


def use_ticket_keys(keys: tickets.TicketKeys | None) -> None:
    """Give every server context made from now on these session-ticket keys (appgw.tls.tickets);
    the data plane calls this once, before it makes any, after `tickets.self_test` passed."""
    global _ticket_keys
    _ticket_keys = keys


def new_context(policy: TlsPolicy, *, http2: bool = False) -> ssl.SSLContext:
    if policy.maximum_version < _EFFECTIVE_MINIMUM_FLOOR:
        raise ValueError(f"policy {policy.name!r} allows only TLS versions OpenSSL refuses")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = max(policy.minimum_version, _EFFECTIVE_MINIMUM_FLOOR)
    context.maximum_version = policy.maximum_version
    if policy.openssl_ciphers:
        context.set_ciphers(policy.openssl_ciphers)
    # Session tickets stay on (OpenSSL's default): resumption saves clients a full handshake;
    # with shared keys (use_ticket_keys) on any worker and any instance of the store.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | _NO_RENEGOTIATION
    context.set_alpn_protocols(_ALPN_HTTP2 if http2 else _ALPN_HTTP1)
    if _ticket_keys is not None:
        try:
            tickets.install(context, _ticket_keys)
        except tickets.TicketKeysUnavailable as error:  # the self-test passed: not expected
            log.warning("session tickets of a new TLS context use OpenSSL's own keys: %s", error)
    return context
