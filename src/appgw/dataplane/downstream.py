"""The client side of the proxy: one protocol per client connection (HTTP/1.1).

It owns the bytes: llhttp (httptools) parses them strictly, requests are answered in order
(pipelined ones wait their turn), writes of one backend read are joined, reading pauses while a
backend or the client cannot keep up, and the connection's own timeouts run here. What a
request means and where it goes is decided by `appgw.core`; one `Exchange` per request does
that request's I/O.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NoReturn, cast

import httptools

from appgw.compile.snapshot import Snapshot
from appgw.core.forward import client_address
from appgw.core.http import MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URL_BYTES, header_value
from appgw.core.request import Reject, framing
from appgw.dataplane.deadline import Deadline
from appgw.dataplane.exchange import Exchange
from appgw.dataplane.services import Listener, Services
from appgw.dataplane.upstream import UpstreamConnection

# Time to read one request's head and body once it started (Azure answers 408 after 60 s).
CLIENT_READ_TIMEOUT = 60.0
# Held writes up to this size are joined into one buffer (one TLS record); larger ones are
# passed as a list, which costs no copy. 16 KiB is TLS's maximum record payload.
JOIN_WRITES_BELOW = 16 * 1024


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
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Exchange | None = None
        self.active: Exchange | None = None
        self.queued: deque[Exchange] = deque()
        self.closing = False
        self.tunnel: UpstreamConnection | None = None
        # (exchange, bytes left) while reading the body of a declined upgrade by hand
        self.plain_body: tuple[Exchange, int] | None = None
        self.read_paused = False
        self.write_paused = False
        # The connection's own timeouts (keep-alive, reading a request) and the active
        # exchange's backend timeout; moved on every request, so lazily re-armed (Deadline).
        self.deadline = Deadline(self.loop)
        self.backend_deadline = Deadline(self.loop)
        self.sent = 0
        # While a backend's bytes are processed, what they produce for the client is held and
        # written once at the end: a response's head and body become one TLS record and one
        # send instead of several.
        self.held: list[bytes] | None = None

    # --- connection lifecycle -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        self.client_address = client_address(self.client_ip, self.client_port)
        self.listener.connections.add(self)
        self.services.metrics.connection_opened(self.gateway_id)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls_version = ssl_object.version() or ""
            cipher = ssl_object.cipher()
            self.tls_cipher = cipher[0] if cipher else ""
        self._arm_timer(self._snapshot().keep_alive_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.services.metrics.connection_closed(self.gateway_id)
        self.closing = True
        self.listener.connections.discard(self)
        self.deadline.close()
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
        if self.plain_on_tls:
            self.reject(Reject(400, "ERRORINFO_HTTP_TO_HTTPS_PORT"))
            return
        if self.plain_body is not None:
            data = self._take_plain_body(data)
            if not data:
                return
        if self.active is None:
            self._arm_timer(CLIENT_READ_TIMEOUT)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            exchange = self.active or (self.queued[-1] if self.queued else None)
            if exchange is not None and exchange.framing.websocket:
                exchange.early_tunnel_data += data[offset:]
                self.pause_reading()
            else:
                # An upgrade we do not offer (h2c, ...) is served as plain HTTP/1.1. llhttp
                # stopped at its head: its Content-Length body is read here, and what follows
                # is the next request, for a fresh parser.
                self.parser = httptools.HttpRequestParser(self)
                if exchange is not None and exchange.framing.has_body:
                    length = header_value(exchange.head.headers, b"content-length") or b"0"
                    exchange.body_done = False
                    self.plain_body = (exchange, int(length))
                if offset < len(data):
                    self.data_received(data[offset:])
        except httptools.HttpParserError as error:
            code = "ERRORINFO_INVALID_REQUEST"
            if isinstance(error, httptools.HttpParserInvalidMethodError):
                code = "ERRORINFO_INVALID_METHOD"
            elif isinstance(error, httptools.HttpParserInvalidURLError):
                code = "ERRORINFO_REQUEST_URI_INVALID"
            self.reject(Reject(400, code))
        except _Rejected:
            pass

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
        return self.active is not None

    def pause_writing(self) -> None:
        self.write_paused = True
        upstream = self.active.upstream if self.active is not None else self.tunnel
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        upstream = self.active.upstream if self.active is not None else self.tunnel
        if upstream is not None:
            upstream.resume_reading()

    # --- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        snapshot, endpoint = self.listener.state
        self.parsing = Exchange(self, snapshot, endpoint)

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
        if self.active is None:
            self.active = exchange
            exchange.begin()
        else:
            self.queued.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.request_complete()
            self.parsing = None
        if self.active is not None:
            self._cancel_timer()

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
        if len(held) == 1:
            self.transport.write(held[0])
        elif sum(map(len, held)) <= JOIN_WRITES_BELOW:
            self.transport.write(b"".join(held))
        else:
            self.transport.writelines(held)  # large bodies: no copy

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def reject(self, reject: Reject) -> None:
        """Answer a malformed request and close; nothing is forwarded."""
        exchange = self.parsing or self.active or Exchange(self, *self.listener.state)
        if not exchange.response_started:
            exchange.answer(reject.status, reject.error_info, close=True)
        self.close()

    def _refuse(self, reject: Reject) -> NoReturn:
        """From a parser callback: answer, close, and stop llhttp's callbacks."""
        self.reject(reject)
        raise _Rejected

    def exchange_done(self, exchange: Exchange, *, close: bool) -> None:
        if exchange is self.active:
            self.active = None
        if close or self.closing:
            self.close()
            return
        if self.queued:
            self.active = self.queued.popleft()
            self.active.begin()
            return
        self.resume_reading()
        self._arm_timer(exchange.snapshot.keep_alive_timeout)

    def start_tunnel(self, upstream: UpstreamConnection, early: bytes) -> None:
        self.tunnel = upstream
        self._cancel_timer()
        if early:
            upstream.write(early)
        self.resume_reading()

    def close(self) -> None:
        self.closing = True
        self._cancel_timer()
        self.flush_writes()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """End the connection at once: the response already started cannot be completed."""
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
        if self.parsing is not None and self.active is None:
            self.reject(Reject(408, "ERRORINFO_CLIENT_READ_TIMEOUT"))
            return
        if self.active is None:
            self.close()


class _Rejected(Exception):
    """Stops llhttp's callbacks after a request was refused."""
