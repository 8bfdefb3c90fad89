"""TLS client contexts towards backends, and the chain a backend presented.

The contexts verify nothing themselves: `appgw.tls.trust.verify_presented_chain` judges the
presented chain after the handshake, before any request byte is sent, so traffic and probes
give the same verdict with the same words. Renegotiation is refused: a backend verified once
must not switch to another certificate on a connection that later serves other clients.
"""

from __future__ import annotations

import _ssl
import functools
import ssl
import weakref
from typing import Any, TypeVar

from appgw.tls.trust import BackendTrust

__all__ = [
    "ResumingContext",
    "client_context",
    "presented_chain",
    "resuming_context",
]

_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0)  # OpenSSL >= 1.1.0h
# Distinct trusts a worker sees is bounded by the configuration; this only caps churn.
_CACHE_SIZE = 1024

_C = TypeVar("_C", bound=ssl.SSLContext)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def client_context(trust: BackendTrust) -> ssl.SSLContext:
    """The client-side TLS context for backends judged by `trust`. Memoized: callers must not
    change it.

    It verifies nothing itself (`verify_presented_chain` does, after the handshake), requires
    TLS 1.2 or newer (Azure retired 1.0/1.1 on backends; v2 prefers 1.3, v1 is 1.2 only since
    the 2025 retirement), offers ALPN "http/1.1" and presents no client certificate (Azure
    has no mutual TLS towards backends).
    """
    return _configure(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), trust)


def _configure(context: _C, trust: BackendTrust) -> _C:
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if trust.sku_v1:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    # A verified backend must not renegotiate to another certificate mid-connection (TLS 1.2).
    context.options |= _NO_RENEGOTIATION
    return context


class ResumingContext(ssl.SSLContext):
    """A `client_context` for one connection identity that offers its last verified session.

    Resumption skips the backend's certificate in the handshake, so a resumed connection is
    judged on the chain verified when its session was made (`offered_chain`), re-checked like
    a new one (expiry, roots, name); the event loop gives no way to pass a session per
    connection, hence the session lives here and `wrap_bio` offers it.
    """

    remembered: tuple[ssl.SSLSession, tuple[bytes, ...]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._offered: weakref.WeakKeyDictionary[ssl.SSLObject, tuple[bytes, ...]] = (
            weakref.WeakKeyDictionary()
        )

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        remembered = self.remembered
        if session is not None or remembered is None:
            return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        ssl_object = super().wrap_bio(
            incoming, outgoing, server_side, server_hostname, remembered[0]
        )
        self._offered[ssl_object] = remembered[1]
        return ssl_object

    def remember(self, ssl_object: ssl.SSLObject, verified_chain: tuple[bytes, ...]) -> None:
        """Offer `ssl_object`'s session from now on; its chain passed verification."""
        session = ssl_object.session
        if session is not None and (session.has_ticket or session.id):
            self.remembered = (session, verified_chain)

    def forget(self) -> None:
        self.remembered = None

    def chain_to_verify(self, ssl_object: ssl.SSLObject) -> tuple[bytes, ...]:
        """What to judge after the handshake: on a resumed session whose leaf is the one
        verified before, that verified chain; otherwise exactly what the backend presented."""
        presented = presented_chain(ssl_object)
        offered = self._offered.pop(ssl_object, None)
        if ssl_object.session_reused and offered and presented and presented[0] == offered[0]:
            return offered
        return presented


def resuming_context(trust: BackendTrust) -> ResumingContext:
    """A new `ResumingContext` configured like `client_context(trust)`; one per identity."""
    return _configure(ResumingContext(ssl.PROTOCOL_TLS_CLIENT), trust)


def presented_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[bytes, ...]:
    """DER certificates exactly as the backend sent them, leaf first; empty before the
    handshake or when the backend sent none.

    Python 3.13+ has a public `get_unverified_chain()`; 3.11/3.12 have it on the private
    `_sslobj`. Without either, only the leaf (`getpeercert(binary_form=True)`). Works for
    SSLSocket and for SSLObject (asyncio and uvloop transports).
    """
    getter: Any = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        chain: Any = getter()
        if chain:
            # On the server side CPython puts the peer's own certificate first: None when a
            # client sent none.
            return tuple(_der_bytes(item) for item in chain if item is not None)
    try:
        leaf = ssl_object.getpeercert(binary_form=True)
    except ValueError:  # no handshake yet
        return ()
    return (leaf,) if leaf else ()


def _der_bytes(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    return bytes(item.public_bytes(_ssl.ENCODING_DER))
