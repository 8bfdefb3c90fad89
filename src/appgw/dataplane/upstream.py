"""Connections to backends: connect, verify TLS, parse responses, keep them alive in a pool.

A connection verified for one identity never serves another: the pool key holds the connect
address, port, SNI, the verified name and the trust (roots or pins). No request byte is
written before the backend's certificate passed `verify_presented_chain`.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import socket
import ssl
import sys
import termios
import time
from collections.abc import Callable
from typing import NoReturn, Protocol as TypingProtocol, cast

import httptools

from appgw.compile.snapshot import UpstreamKey
from appgw.core.http import Header
from appgw.tls.client import ResumingContext, resuming_context
from appgw.tls.trust import BackendCertificateVerdict, verify_presented_chain

# Idle backend connections are closed after this; below the 60-75 s keep-alive of common
# servers (nginx 75 s, Apache 5 s is shorter and simply closes first, which we notice).
UPSTREAM_IDLE_TIMEOUT = 55.0
# Per key; enough for bursts on one worker, small enough not to hoard backend sockets.
MAX_IDLE_PER_KEY = 64
# A backend's response head may not be larger than this, nor have more header fields than the
# next: twice a request's limits, as responses carry cookies and policies; beyond them it is a
# 502 (nginx and HAProxy stop at 4-16 KiB by default).
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
MAX_RESPONSE_HEADERS = 400
# While a response head arrives it is parsed in pieces of this size, so a crossed limit is
# noticed within one piece (llhttp buffers a header value it has not seen the end of).
RESPONSE_HEAD_PIECE = 8 * 1024
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
# Pieces written together up to this size are joined into one buffer (one TLS record, one
# send); larger ones are passed as a list, which costs no copy. 16 KiB is TLS's maximum record
# payload.
JOIN_WRITES_BELOW = 16 * 1024
# TCP connect plus TLS handshake to a backend; Azure does not publish one, 10 s is nginx's
# proxy_connect_timeout order of magnitude (60 s there is generous for a LAN).
CONNECT_TIMEOUT = 10.0


_INT_BUFFER = bytes(4)  # FIONREAD's answer: an int


class _Refused(Exception):
    """Stops llhttp's callbacks after a response was refused."""


class UpstreamError(Exception):
    """A backend could not be used; `error_info` is Azure's access-log code."""

    def __init__(self, error_info: str, message: str) -> None:
        super().__init__(message)
        self.error_info = error_info
        self.message = message


class BackendTlsRejected(UpstreamError):
    def __init__(self, verdict: BackendCertificateVerdict) -> None:
        super().__init__("ERRORINFO_UPSTREAM_TLS_VERIFICATION_FAILED", verdict.message)
        self.verdict = verdict


class ResponseConsumer(TypingProtocol):
    """What an upstream connection reports to the exchange it is serving."""

    def hold_output(self) -> None: ...  # what follows until flush_output may be written as one
    def flush_output(self) -> None: ...
    def response_head(self, status: int, headers: list[Header], upgrade: bool) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_end(self, reusable: bool) -> None: ...
    def upstream_lost(self, error: UpstreamError) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


def write_pieces(transport: asyncio.WriteTransport, pieces: list[bytes]) -> None:
    """Write `pieces` with as few TLS records and sends as copying allows."""
    if len(pieces) == 1:
        transport.write(pieces[0])
    elif sum(map(len, pieces)) <= JOIN_WRITES_BELOW:
        transport.write(b"".join(pieces))
    elif pieces:
        transport.writelines(pieces)  # large bodies: no copy


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, key: UpstreamKey, release: Callable[[UpstreamConnection], None]) -> None:
        self.key = key
        self._release = release
        self.transport: asyncio.Transport | None = None
        self.consumer: ResponseConsumer | None = None
        self.closed = False
        self.tunnel = False  # after a 101 the bytes are the consumer's, unparsed
        self.head_only = False  # response to HEAD: no body whatever the headers say
        self.idle_since = 0.0
        self.reading_paused = False
        # The chain that passed verification, until its TLS session is remembered for reuse.
        self.verified_chain: tuple[bytes, ...] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._status = 0
        self._headers: list[Header] = []
        self._head_done = False
        self._head_bytes = 0  # of the response head being received
        self._in_body = False
        self._expecting = False  # a request is out and its final response has not ended
        # RFC 6455: the Sec-WebSocket-Accept a 101 must carry (None: no upgrade was asked)
        self._websocket_accept: bytes | None = None
        self.reason = b""
        self._fd = -1
        # Set while a read is parsed: a connection whose response ended in that read becomes
        # idle only after the rest of the read was parsed, so bytes after the response (a
        # second one) are seen first; else a request pipelined behind could take it at once.
        self._feeding = False
        self.release_pending = False

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def unread(self) -> bool:
        """Bytes wait in the kernel that no request asked for (a second response, say): the
        connection is out of step and must not serve another request."""
        if self._fd < 0:
            return False
        try:
            pending = fcntl.ioctl(self._fd, termios.FIONREAD, _INT_BUFFER)
        except OSError:
            return True  # an fd that cannot say is not trusted
        return int.from_bytes(pending, sys.byteorder) > 0

    def data_received(self, data: bytes) -> None:
        consumer = self.consumer
        if self.tunnel:
            if consumer is not None:
                consumer.response_body(data)
            return
        if consumer is None:
            # Bytes nobody asked for on an idle connection: the stream is out of step.
            self.close()
            return
        consumer.hold_output()
        self._feeding = True
        try:
            self._feed(data)
        finally:
            self._feeding = False
            consumer.flush_output()
            if self.release_pending:
                self.release_pending = False
                self._release(self)

    @property
    def feeding(self) -> bool:
        return self._feeding

    def _feed(self, data: bytes) -> None:
        try:
            while data:
                if self._in_body:
                    self._parser.feed_data(data)
                    return
                piece, data = data[:RESPONSE_HEAD_PIECE], data[RESPONSE_HEAD_PIECE:]
                self._head_bytes += len(piece)
                self._parser.feed_data(piece)
                if not self._in_body and self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
                    self._invalid(f"a response head over {MAX_RESPONSE_HEAD_BYTES} bytes")
        except httptools.HttpParserUpgrade as upgrade:
            self.tunnel = True
            rest = data[upgrade.args[0] :] if upgrade.args else b""
            if rest and self.consumer is not None:
                self.consumer.response_body(rest)
        except httptools.HttpParserError as error:
            self._lose(
                UpstreamError("ERRORINFO_UPSTREAM_INVALID_RESPONSE", f"invalid response: {error}")
            )
        except _Refused:
            pass

    def _invalid(self, what: str) -> NoReturn:
        """The response is not one to relay: 502 (or an abort once a response started)."""
        self._lose(UpstreamError("ERRORINFO_UPSTREAM_INVALID_RESPONSE", f"the backend sent {what}"))
        raise _Refused

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel and self.consumer is not None:
            self.consumer.response_end(False)
            self.consumer = None
            return
        self._lose(
            UpstreamError(
                "ERRORINFO_UPSTREAM_CLOSED_CONNECTION",
                f"the backend closed the connection{f': {exc}' if exc else ''}",
            )
        )

    def pause_writing(self) -> None:
        if self.consumer is not None:
            self.consumer.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.consumer is not None:
            self.consumer.upstream_paused(False)

    # --- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._expecting:
            # A response nobody asked for (a second one, say): the stream is out of step.
            self.close()
            raise _Refused
        self._headers = []
        self._head_done = False
        self._head_bytes = 0
        self.reason = b""

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(self._headers) > MAX_RESPONSE_HEADERS:
            self._invalid(f"more than {MAX_RESPONSE_HEADERS} response header fields")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        consumer = self.consumer
        if consumer is None:
            return
        if status == 101:
            self._check_switch()
        elif 100 <= status < 200:
            consumer.response_head(status, self._headers, False)  # interim; more follows
            return
        self._head_done = True
        self._in_body = True
        consumer.response_head(status, self._headers, status == 101)
        if self.head_only and status != 101:
            self._in_body = False
            self._finish(reusable=self._parser.should_keep_alive())
            # The body the headers announce never comes; start the next response afresh.
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        if self.consumer is not None and self._head_done:
            self.consumer.response_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._head_bytes = 0
        # After a 101 the connection becomes a tunnel; the exchange owns it until it closes.
        if self._head_done and self.consumer is not None and self._parser.get_status_code() != 101:
            self._finish(reusable=self._parser.should_keep_alive())

    def _check_switch(self) -> None:
        """A 101 must answer the WebSocket upgrade the request asked for, with its key's
        accept value (RFC 6455 §4.2.2): anything else would turn the connection into a raw
        tunnel nobody validated."""
        expected = self._websocket_accept
        if expected is None:
            self._invalid("101 Switching Protocols to a request that asked for no upgrade")
        accepts = [v.strip() for n, v in self._headers if n.lower() == b"sec-websocket-accept"]
        if accepts != [expected]:
            self._invalid("a WebSocket 101 without the Sec-WebSocket-Accept of the request's key")

    # --- use by the exchange --------------------------------------------------------------------

    def start(
        self, consumer: ResponseConsumer, head_only: bool, websocket_key: bytes | None = None
    ) -> None:
        """Serve `consumer`'s request. `websocket_key`: its Sec-WebSocket-Key when it asks
        for the WebSocket upgrade (the one switch a 101 may answer)."""
        self.consumer = consumer
        self.head_only = head_only
        self._head_done = False
        self._expecting = True
        self._websocket_accept = (
            base64.b64encode(hashlib.sha1(websocket_key.strip() + WEBSOCKET_GUID).digest())
            if websocket_key is not None
            else None
        )

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_all(self, pieces: list[bytes]) -> None:
        """`pieces` as one write: each TLS write is a record and a send, whatever its size."""
        if self.transport is not None and not self.closed:
            write_pieces(self.transport, pieces)

    def pause_reading(self) -> None:
        """The client cannot take more: stop reading the backend (backpressure)."""
        if self.transport is not None and not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self.consumer = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.consumer = None
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, *, reusable: bool) -> None:
        self._expecting = False
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            consumer.response_end(reusable and not self.closed)

    def _lose(self, error: UpstreamError) -> None:
        consumer, self.consumer = self.consumer, None
        if self.transport is not None:
            self.transport.abort()
        self.closed = True
        if consumer is not None:
            consumer.upstream_lost(error)


class UpstreamPool:
    """Idle keep-alive connections by key; new ones are connected and verified on demand."""

    def __init__(self) -> None:
        self._idle: dict[UpstreamKey, list[UpstreamConnection]] = {}
        # One TLS context per identity, offering the identity's last verified session: a new
        # connection to a backend resumes instead of a full handshake (nginx's
        # proxy_ssl_session_reuse). Never shared between keys: a session verified for one
        # name or trust is never offered to another.
        self._contexts: dict[UpstreamKey, ResumingContext] = {}

    def take_idle(self, key: UpstreamKey) -> UpstreamConnection | None:
        """An idle connection for `key`, or None: then `connect` makes one."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if connection.unread():
                connection.close()
                continue
            return connection
        return None

    def release(self, connection: UpstreamConnection) -> None:
        if connection.closed or connection.tunnel:
            connection.close()
            return
        if connection.feeding:
            connection.release_pending = True  # once the read is parsed (UpstreamConnection)
            return
        if connection.verified_chain is not None:
            self._remember_session(connection, connection.verified_chain)
        # A slow client may have paused it; the next user must find it reading.
        connection.resume_reading()
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= MAX_IDLE_PER_KEY:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def _remember_session(self, connection: UpstreamConnection, chain: tuple[bytes, ...]) -> None:
        # After a response: TLS 1.3 sends the session ticket after the handshake.
        connection.verified_chain = None
        context = self._contexts.get(connection.key)
        if context is not None and connection.transport is not None:
            context.remember(connection.transport.get_extra_info("ssl_object"), chain)

    def retain_only(self, keep: Callable[[UpstreamKey], bool]) -> None:
        """Close idle connections whose key the new configuration no longer uses."""
        for key in [key for key in self._idle if not keep(key)]:
            for connection in self._idle.pop(key):
                connection.close()
        for key in [key for key in self._contexts if not keep(key)]:
            del self._contexts[key]

    def close_expired(self) -> None:
        cutoff = time.monotonic() - UPSTREAM_IDLE_TIMEOUT
        for key, idle in list(self._idle.items()):
            fresh = [c for c in idle if c.idle_since > cutoff and not c.closed]
            for connection in idle:
                if connection not in fresh:
                    connection.close()
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]

    def close_all(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    async def connect(self, key: UpstreamKey, timeout: float) -> UpstreamConnection:
        """A new connection for `key`, its TLS identity verified before it is returned."""
        loop = asyncio.get_running_loop()
        context: ResumingContext | None = None
        if key.trust is not None:
            context = self._contexts.get(key)
            if context is None:
                context = self._contexts[key] = resuming_context(key.trust)
        try:
            async with asyncio.timeout(min(timeout, CONNECT_TIMEOUT)):
                _transport, connection = await loop.create_connection(
                    lambda: UpstreamConnection(key, self.release),
                    key.address,
                    key.port,
                    ssl=context,
                    server_hostname=key.sni if context is not None else None,
                    ssl_handshake_timeout=CONNECT_TIMEOUT if context is not None else None,
                )
        except TimeoutError:
            raise UpstreamError(
                "ERRORINFO_UPSTREAM_TIMED_OUT", f"connecting to {key.describe()} timed out"
            ) from None
        except ssl.SSLError as error:
            raise UpstreamError(
                "ERRORINFO_UPSTREAM_TLS_HANDSHAKE_FAILED",
                f"TLS handshake with {key.describe()} failed: {error.reason or error}",
            ) from None
        except OSError as error:
            kind = "resolve" if isinstance(error, socket.gaierror) else "connect to"
            raise UpstreamError(
                "ERRORINFO_UPSTREAM_CONNECT_FAILED",
                f"could not {kind} {key.describe()}: {error.strerror or error}",
            ) from None
        if key.trust is not None:
            assert connection.transport is not None and context is not None
            ssl_object = connection.transport.get_extra_info("ssl_object")
            chain = context.chain_to_verify(ssl_object)
            verdict = verify_presented_chain(key.trust, chain, verify_name=key.verify_name)
            if not verdict.ok:
                context.forget()
                connection.abort()
                raise BackendTlsRejected(verdict)
            connection.verified_chain = chain
        return connection
