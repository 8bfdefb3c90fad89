"""The SNI dispatcher: one context per listening socket that picks each connection's certificate
from the configuration served at the moment of the ClientHello."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from appgw.compile.matching import normalize_host
from appgw.tls import client_auth
from appgw.tls.libssl import LibSslUnavailable
from appgw.tls.server import TlsPolicy, new_context

log = logging.getLogger("appgw.dataplane")


def dispatcher_context(
    policy: TlsPolicy, choose: Callable[[str | None], ssl.SSLContext | None]
) -> ssl.SSLContext:
    """The context a listening socket is created with; one per listening endpoint.

    It carries the policy itself: when the SNI callback switches a connection to another
    context, OpenSSL keeps this context's protocol range and options, while the TLS <= 1.2
    cipher list follows the switched-to context (tested), so both must carry the same policy;
    a per-listener policy on a shared port could vary the suites but not the versions. On every
    handshake the callback calls `choose(server_name)` with the normalized SNI (normalize_host),
    or None when the ClientHello has no SNI or an unusable one; OpenSSL runs the callback for
    ClientHellos without SNI too. The connection switches to the returned context, or the
    handshake fails (alert unrecognized_name with SNI, handshake_failure without) on None. As
    `choose` runs per handshake, pointing it at the current configuration changes certificates
    without re-creating the listening socket.
    """
    context = new_context(policy)

    def switch_certificate(
        connection: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        _dispatcher: ssl.SSLContext,
    ) -> int | None:
        chosen = choose(None if server_name is None else normalize_host(server_name))
        if chosen is None:
            if server_name is None:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = chosen
        try:
            client_auth.switched_to(connection, chosen)
        except LibSslUnavailable as error:
            # A listener that requires client certificates is never served without asking.
            log.error("TLS handshake refused: client certificates cannot be requested: %s", error)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    context.sni_callback = switch_certificate
    return context
