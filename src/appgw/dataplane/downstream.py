"""The client side of the proxy: one protocol per client connection (HTTP/1.1).

It owns the bytes: llhttp (httptools) parses them strictly, requests are answered in order
(pipelined ones wait their turn), writes of one backend read are joined, reading pauses while a
backend or the client cannot keep up, and the connection's own timeouts and limits run here.
What a request means and where it goes is decided by `appgw.core`; one `Exchange` per request
does that request's I/O.

A read is parsed whole before any request in it is dispatched: framing that turns out invalid
later in the same read (a bad chunk, a second request that is refused) stops everything before a
byte reaches a backend. Parsing stops at the first refusal; the requests before it are still
answered, in order, then the refusal, then the connection closes. A head is bounded while it
arrives (bytes received, and a total deadline from its first byte), not only once complete.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import NoReturn, cast

import httptools

from appgw.compile.snapshot import ListenerTls, Snapshot
from appgw.core.forward import client_address
from appgw.core.http import MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URL_BYTES, header_value
from appgw.core.request import Reject, framing
from appgw.dataplane.deadline import Deadline
from appgw.dataplane.exchange import Exchange
from appgw.dataplane.http2 import Http2Session
from appgw.dataplane.services import Listener, Services
from appgw.dataplane.upstream import UpstreamConnection, write_pieces
from appgw.tasks import spawn
from appgw.tls.client import presented_chain
from appgw.tls.client_auth import (
    ClientAuth,
    ClientVerdict,
    judge_chain,
    revocation_query,
    with_revocation,
)
from appgw.tls.revocation import RevocationQuery, no_source, utc_now
from appgw.tls.server import policy_allows

log = logging.getLogger("appgw.dataplane")

# A request head (request line and header section) may not be longer than its two limits allow,
# plus room for the request line's method and version and the line ends.
MAX_HEAD_BYTES = MAX_URL_BYTES + MAX_HEADER_BYTES + 1024
# While a head arrives, bytes are parsed in pieces of this size, so that a crossed limit is
# noticed within one piece of where it is (llhttp buffers a header name or value it has not
# seen the end of).
HEAD_PIECE = 8 * 1024
# Requests parsed ahead of the one being answered (pipelining) that are kept; one read can
# hold thousands of tiny ones, and no real client pipelines this deep.
MAX_PIPELINED = 64


class ClientConnection(asyncio.Protocol):
    def __init__(
        self, listener: Listener, services: Services, *, plain_on_tls: bool = False
    ) -> None:
        self.listener = listener
        self.services = services
        self.plain_on_tls = plain_on_tls  # plain HTTP that arrived on an HTTPS port
        # The gateway that owned the port when the client connected: the connection metrics
        # count it there until it closes, even if the port changes hands meanwhile.
        self.gateway_id = listener.state[0].gateway_id
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.client_port = 0
        self.client_address = b""  # "ip:port" as X-Forwarded-For carries it
        self.tls_version = ""
        self.tls_cipher = ""
        # The certificate and SSL profile SNI chose, and the client certificate's verdict
        # (None: the listener asks for none).
        self.tls_certificate: ListenerTls | None = None
        self.client_verdict: ClientVerdict | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Exchange | None = None
        self.active: Exchange | None = None
        # Requests whose head is complete, waiting for their turn (pipelining).
        self.queued: deque[Exchange] = deque()
        self.closing = False
        self.parse_stopped = False  # a request was refused: no byte after it is parsed
        self.head_bytes = 0  # bytes of the head being received
        self.in_body = False  # between a head's end and its message's end
        self.tunnel: UpstreamConnection | None = None
        # (exchange, bytes left) while reading the body of a declined upgrade by hand
        self.plain_body: tuple[Exchange, int] | None = None
        self.read_paused = False
        self.write_paused = False
        # The connection's own timeouts (keep-alive, receiving a head), the active exchange's
        # backend timeout, and the time a client may take no byte of a response; moved on
        # every request, so lazily re-armed (Deadline).
        self.deadline = Deadline(self.loop)
        self.backend_deadline = Deadline(self.loop)
        self.send_deadline = Deadline(self.loop)
        self.sent = 0
        # While a backend's bytes are processed, what they produce for the client is held and
        # written once at the end: a response's head and body become one TLS record and one
        # send instead of several.
        self.held: list[bytes] | None = None
        # The HTTP/2 session the transport was handed to, when ALPN chose h2.
        self.http2: Http2Session | None = None

    # --- connection lifecycle -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        if not self.services.admission.admit(self):
            self.closing = True
            self.transport.abort()  # every connection of this address (or worker) is busy
            return
        self.client_address = client_address(self.client_ip, self.client_port)
        self.listener.connections.add(self)
        self.services.metrics.connection_opened(self.gateway_id)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls_version = ssl_object.version() or ""
            cipher = ssl_object.cipher()
            self.tls_cipher = cipher[0] if cipher else ""
            endpoint = self.listener.state[1]
            self.tls_certificate = endpoint.certificate_names.get(ssl_object.context)
            policy = endpoint.profile_policies.get(ssl_object.context)
            if policy is not None and not policy_allows(policy, self.tls_version):
                # The SSL profile's policy is narrower than the port's (see Endpoint).
                log.info(
                    "TLS connection from %s closed: %s is outside the SSL profile's policy %s",
                    self.client_address.decode(),
                    self.tls_version,
                    policy.name,
                )
                self.closing = True
                self.transport.abort()
                return
            auth = endpoint.client_auths.get(ssl_object.context)
            if auth is not None:
                self._judge_client(ssl_object, auth)
            if ssl_object.selected_alpn_protocol() == "h2":
                # Offered only by enableHttp2 gateways' contexts (tls/server.py).
                self.http2 = Http2Session(self, self.transport)
                self.transport.set_protocol(self.http2)
                self.http2.start()
                return
        self._arm_timer(self._snapshot().keep_alive_timeout)

    def _judge_client(self, ssl_object: ssl.SSLObject, auth: ClientAuth) -> None:
        """The client certificate, judged before any request is read: every request of this
        listener needs the verdict. A revocation check reads nothing until it is answered."""
        chain = presented_chain(ssl_object)
        verdict = self.client_verdict = judge_chain(chain, auth)
        if not (auth.ocsp and verdict.ok):
            return
        query = revocation_query(chain, auth)
        if query is None:
            self.client_verdict = with_revocation(verdict, no_source(utc_now()))
            return
        self.pause_reading()
        spawn(self._check_revocation(query, verdict))

    async def _check_revocation(self, query: RevocationQuery, verdict: ClientVerdict) -> None:
        answer = await self.services.revocation.answer(query)
        self.client_verdict = with_revocation(verdict, answer)
        self.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.deadline.close()
        self.send_deadline.close()
        if self not in self.listener.connections:
            return  # refused at connection_made: nothing was counted
        self.services.admission.gone(self)
        self.services.metrics.connection_closed(self.gateway_id)
        self.listener.connections.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
        for exchange in (self.active, *self.queued):
            if exchange is not None:
                exchange.client_gone()
        self.backend_deadline.close()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.closing or self.parse_stopped:
            return  # after a refusal nothing more is read
        if self.plain_on_tls:
            self.reject(Reject(400, "ERRORINFO_HTTP_TO_HTTPS_PORT"))
            return
        if self.plain_body is not None:
            data = self._take_plain_body(data)
            if not data:
                return
        try:
            self._feed(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade(data, upgrade)
        except httptools.HttpParserError as error:
            code = "ERRORINFO_INVALID_REQUEST"
            if isinstance(error, httptools.HttpParserInvalidMethodError):
                code = "ERRORINFO_INVALID_METHOD"
            elif isinstance(error, httptools.HttpParserInvalidURLError):
                code = "ERRORINFO_REQUEST_URI_INVALID"
            self._stop(Reject(400, code))
        except _Stopped:
            pass
        self._advance()

    def _feed(self, data: bytes) -> None:
        """Parse `data`; a head is fed in pieces and its size checked after each."""
        parser = self.parser
        while data:
            if self.in_body:
                parser.feed_data(data)
                return
            piece, data = data[:HEAD_PIECE], data[HEAD_PIECE:]
            self.head_bytes += len(piece)
            parser.feed_data(piece)
            if not self.in_body and self.head_bytes > MAX_HEAD_BYTES:
                self._refuse(Reject(431, "ERRORINFO_INVALID_REQUEST"))

    def _upgrade(self, data: bytes, upgrade: httptools.HttpParserUpgrade) -> None:
        offset = upgrade.args[0] if upgrade.args else len(data)
        exchange = self.queued[-1] if self.queued else self.active
        if exchange is not None and exchange.framing.websocket:
            exchange.early_tunnel_data += data[offset:]
            self.pause_reading()
            return
        # An upgrade we do not offer (h2c, ...) is served as plain HTTP/1.1. llhttp stopped at
        # its head: its Content-Length body is read here, and what follows is the next request,
        # for a fresh parser.
        self.parser = httptools.HttpRequestParser(self)
        self.in_body = False
        self.head_bytes = 0
        if exchange is not None and exchange.framing.has_body:
            length = header_value(exchange.head.headers, b"content-length") or b"0"
            exchange.body_done = False
            self.plain_body = (exchange, int(length))
        if offset < len(data):
            self.data_received(data[offset:])

    def _take_plain_body(self, data: bytes) -> bytes:
        """Pass a declined upgrade's body through; return the bytes after it."""
        assert self.plain_body is not None
        exchange, remaining = self.plain_body
        piece, rest = data[:remaining], data[remaining:]
        if piece:
            exchange.request_body(piece)
        remaining -= len(piece)
        if remaining == 0:
            self.plain_body = None
            exchange.request_complete()
        else:
            self.plain_body = (exchange, remaining)
        return rest

    def eof_received(self) -> bool | None:
        # The client finished sending; let an active exchange finish its response first.
        return self.active is not None or bool(self.queued)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.send_deadline.set(self.services.limits.send_timeout, self._send_timed_out)
        upstream = self.active.upstream if self.active is not None else self.tunnel
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.send_deadline.clear()
        upstream = self.active.upstream if self.active is not None else self.tunnel
        if upstream is not None:
            upstream.resume_reading()

    # --- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        snapshot, endpoint = self.listener.state
        self.parsing = Exchange(self, snapshot, endpoint)
        self.services.admission.busy(self)
        if self.active is None and not self.queued:
            # The head's deadline runs from its first byte and is not moved by later reads.
            self._arm_timer(self.services.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        exchange = self.parsing
        assert exchange is not None
        exchange.head.target += url
        if len(exchange.head.target) > MAX_URL_BYTES:
            self._refuse(Reject(414, "ERRORINFO_REQUEST_URI_INVALID"))

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.parsing
        assert exchange is not None
        head = exchange.head
        head.headers.append((name, value))
        head.header_bytes += len(name) + len(value) + 4
        if head.header_bytes > MAX_HEADER_BYTES or len(head.headers) > MAX_HEADER_COUNT:
            self._refuse(Reject(431, "ERRORINFO_INVALID_REQUEST"))

    def on_headers_complete(self) -> None:
        exchange = self.parsing
        assert exchange is not None
        parser = self.parser
        head = exchange.head
        head.method = parser.get_method()
        head.http_version = parser.get_http_version()
        head.keep_alive = parser.should_keep_alive()
        decided = framing(head, upgrade=parser.should_upgrade())
        if isinstance(decided, Reject):
            self._refuse(decided)
        exchange.framing = decided
        self.in_body = True
        if self.active is None and not self.queued:
            self._cancel_timer()  # the exchange's own timers take over
        if len(self.queued) >= MAX_PIPELINED:
            self._refuse(Reject(400, "ERRORINFO_INVALID_REQUEST"))
        self.queued.append(exchange)

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.request_complete()
            self.parsing = None
        self.in_body = False
        self.head_bytes = 0

    # --- used by exchanges ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.sent += len(data)
            if self.held is not None:
                self.held.append(data)
            else:
                self.transport.write(data)

    def hold_writes(self) -> None:
        if self.held is None:
            self.held = []

    def flush_writes(self) -> None:
        held, self.held = self.held, None
        if not held or self.transport is None or self.transport.is_closing():
            return
        write_pieces(self.transport, held)

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.parse_stopped:
            return  # nothing after a refusal is read
        if self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def reject(self, reject: Reject) -> None:
        """Answer at once and close: the client sent something no request can come of."""
        self.parse_stopped = True
        exchange = self.parsing or Exchange(self, *self.listener.state)
        if self.active is None and not exchange.response_started:
            exchange.answer(reject.status, reject.error_info, close=True)
        self.close()

    def _stop(self, reject: Reject) -> None:
        """Parsing found a refusal: what came before it is still answered, in order, then
        the refusal, then the connection closes. Nothing after it is parsed."""
        self.parse_stopped = True
        self.pause_reading()
        exchange = self.parsing
        self.parsing = None
        if exchange is not None and exchange is self.active:
            # Its head went to a backend already; the body turned out malformed.
            exchange.request_broken(reject)
            return
        if exchange is None:
            exchange = Exchange(self, *self.listener.state)
        exchange.refused = reject
        if exchange not in self.queued:
            self.queued.append(exchange)

    def _refuse(self, reject: Reject) -> NoReturn:
        """From a parser callback: stop parsing here, with `reject` as the answer."""
        self._stop(reject)
        raise _Stopped

    def _advance(self) -> None:
        """Start the next complete request when none is being answered."""
        if self.active is None and self.queued and not self.closing:
            exchange = self.active = self.queued.popleft()
            exchange.begin()
        if self.queued:
            self.pause_reading()  # one request at a time: the next ones wait in the kernel

    def exchange_done(self, exchange: Exchange, *, close: bool) -> None:
        if exchange is self.active:
            self.active = None
        if close or self.closing:
            self.close()
            return
        if self.queued:
            self._advance()
            return
        if self.parsing is None:
            self.services.admission.idle(self)
            self._arm_timer(exchange.snapshot.keep_alive_timeout)
        else:
            self._arm_timer(self.services.limits.header_timeout)  # the next head has begun
        self.resume_reading()

    def start_tunnel(self, upstream: UpstreamConnection, early: bytes) -> None:
        self.tunnel = upstream
        self._cancel_timer()
        if early:
            upstream.write(early)
        self.resume_reading()

    def close(self) -> None:
        if self.http2 is not None:
            self.http2.drain()  # GOAWAY: the streams it has finish first
            return
        self.closing = True
        self._cancel_timer()
        self.flush_writes()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """End the connection at once: the response already started cannot be completed."""
        if self.http2 is not None:
            self.http2.abort()
            return
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # --- timers ---------------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        return self.listener.state[0]

    def _arm_timer(self, seconds: float) -> None:
        self.deadline.set(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        self.deadline.clear()

    def _timed_out(self) -> None:
        if self.parsing is None:
            self.close()  # idle keep-alive connection
        elif self.active is None and not self.queued:
            self.reject(Reject(408, "ERRORINFO_CLIENT_READ_TIMEOUT"))
        else:
            self._stop(Reject(408, "ERRORINFO_CLIENT_READ_TIMEOUT"))  # after those before it

    def _send_timed_out(self) -> None:
        """The client has taken no byte for the send timeout: drop it (and its backend)."""
        if self.active is not None:
            self.active.error_info = "ERRORINFO_CLIENT_SEND_TIMED_OUT"
        self.abort()


class _Stopped(Exception):
    """Stops llhttp's callbacks after a refusal."""
