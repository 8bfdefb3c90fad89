"""Connections to backends: connect, verify TLS, parse responses, keep them alive in a pool.

A connection verified for one identity never serves another: the pool key holds the connect
address, port, SNI, the verified name and the trust (roots or pins). No request byte is
written before the backend's certificate passed `verify_presented_chain`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Protocol as TypingProtocol, cast

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
# TCP connect plus TLS handshake to a backend; Azure does not publish one, 10 s is nginx's
# proxy_connect_timeout order of magnitude (60 s there is generous for a LAN).
CONNECT_TIMEOUT = 10.0


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
        self.reason = b""

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

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
        try:
            self._feed(data)
        finally:
            consumer.flush_output()

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.tunnel = True
            rest = data[upgrade.args[0] :] if upgrade.args else b""
            if rest and self.consumer is not None:
                self.consumer.response_body(rest)
        except httptools.HttpParserError as error:
            self._lose(
                UpstreamError("ERRORINFO_UPSTREAM_INVALID_RESPONSE", f"invalid response: {error}")
            )

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
        self._headers = []
        self._head_done = False
        self.reason = b""

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        consumer = self.consumer
        if consumer is None:
            return
        if 100 <= status < 200 and status != 101:
            consumer.response_head(status, self._headers, False)  # interim; more follows
            return
        self._head_done = True
        consumer.response_head(status, self._headers, status == 101)
        if self.head_only and status != 101:
            self._finish(reusable=self._parser.should_keep_alive())
            # The body the headers announce never comes; start the next response afresh.
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        if self.consumer is not None and self._head_done:
            self.consumer.response_body(body)

    def on_message_complete(self) -> None:
        # After a 101 the connection becomes a tunnel; the exchange owns it until it closes.
        if self._head_done and self.consumer is not None and self._parser.get_status_code() != 101:
            self._finish(reusable=self._parser.should_keep_alive())

    # --- use by the exchange --------------------------------------------------------------------

    def start(self, consumer: ResponseConsumer, head_only: bool) -> None:
        self.consumer = consumer
        self.head_only = head_only
        self._head_done = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

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
            if not connection.closed:
                return connection
        return None

    def release(self, connection: UpstreamConnection) -> None:
        if connection.closed or connection.tunnel:
            connection.close()
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
