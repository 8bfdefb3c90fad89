"""HTTP/2 to clients: one session per connection that chose h2 in ALPN, one stream per request.

The frames, HPACK and flow-control accounting are the `h2` library's. What is the gateway's:
each stream becomes an `Http2Exchange`, the same exchange an HTTP/1.1 request is (routing,
rewrites, balancing, retries, health, the access log), with only its framing towards the client
replaced; the backend leg stays HTTP/1.1 over the pooled, verified connections.

Backpressure runs both ways through flow control. A stream's request body is acknowledged
(WINDOW_UPDATE) only while its backend takes it, so a slow backend stops the client within one
window. A response is framed only within the client's window; what does not fit waits in the
stream and its backend is not read until the client opens the window again (or the send
timeout ends the stream).

Floods are bounded by the limits in `Http2Limits` (core/limits.py): streams, header list and
HPACK table, CONTINUATION frames, resets, SETTINGS, PINGs and empty frames per window, and the
deadlines for the preface, a header block and an idle connection. A client past one is sent
GOAWAY (ENHANCE_YOUR_CALM) and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from h2.exceptions import DenialOfServiceError, ProtocolError, StreamClosedError
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes, Settings
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame

from appgw.compile.snapshot import Endpoint, Snapshot
from appgw.core.http import LAST_CHUNK, Header, error_page
from appgw.core.http2 import (
    FloodGuard,
    error_fields,
    interim_fields,
    redirect_fields,
    response_fields,
    stream_request,
    trailer_section,
)
from appgw.core.request import Reject
from appgw.dataplane.deadline import Deadline
from appgw.dataplane.exchange import Exchange
from appgw.dataplane.upstream import UpstreamConnection

if TYPE_CHECKING:
    from appgw.dataplane.downstream import ClientConnection

log = logging.getLogger("appgw.dataplane")

# h2's own stream and connection windows before the gateway's SETTINGS take effect (RFC 9113).
_DEFAULT_WINDOW = 65_535


class _HeaderBlockBuffer(FrameBuffer):
    """h2's frame buffer with the gateway's bounds on a header block: CONTINUATION frames
    (h2's own is a fixed 64) and bytes; and whether a block is open (its deadline runs)."""

    def __init__(self, max_continuations: int, max_bytes: int) -> None:
        super().__init__(server=True)
        self.max_continuations = max_continuations
        self.max_bytes = max_bytes

    @property
    def in_header_block(self) -> bool:
        return bool(self._headers_buffer)

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        block = self._headers_buffer
        if block or isinstance(f, HeadersFrame):
            if len(block) > self.max_continuations:
                raise DenialOfServiceError(
                    f"more than {self.max_continuations} CONTINUATION frames in one header block"
                )
            size = sum(len(frame.data) for frame in block)
            if isinstance(f, (HeadersFrame, ContinuationFrame)):
                size += len(f.data)
            if size > self.max_bytes:
                raise DenialOfServiceError(f"a header block of more than {self.max_bytes} bytes")
        return super()._update_header_buffer(f)


class Http2Session(asyncio.Protocol):
    """The client connection once ALPN chose h2 (downstream.ClientConnection hands its
    transport over); connection-wide bookkeeping (admission, metrics) stays with it."""

    def __init__(self, client: ClientConnection, transport: asyncio.Transport) -> None:
        self.client = client
        self.transport = transport
        self.loop = client.loop
        self.limits = limits = client.services.limits.http2
        self.flood = FloodGuard(limits)
        # Inbound headers are validated by h2 (RFC 9113 §8.2); outbound ones are the gateway's
        # own lists (response_fields), built valid, so h2 need not check them again.
        conn = self.h2 = H2Connection(
            H2Configuration(
                client_side=False, header_encoding=None, validate_outbound_headers=False
            )
        )
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
                SettingCodes.HEADER_TABLE_SIZE: limits.header_table_size,
                SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
            },
        )
        # Until the client acknowledges the SETTINGS, h2 decodes with its defaults; these
        # bounds hold from the first byte.
        conn.decoder.max_header_list_size = limits.max_header_list_size
        conn.decoder.max_allowed_table_size = limits.header_table_size
        buffer = _HeaderBlockBuffer(limits.max_continuation_frames, limits.max_header_block_size)
        buffer.max_frame_size = conn.max_inbound_frame_size
        conn.incoming_buffer = buffer
        self.frames = buffer
        self.streams: dict[int, Http2Stream] = {}
        self.blocked: set[Http2Stream] = set()  # streams with response bytes over the window
        # While a read (the client's or a backend's) is processed, streams' output waits
        # here and is framed and written once at its end.
        self.held = False
        self.dirty: set[Http2Stream] = set()
        self.block_open = False  # a header block has begun and not ended
        # Streams whose request arrived in the read being processed: they start once the
        # whole read is, so one reset in the same read (Rapid Reset) costs no backend work.
        self.starting: list[Http2Exchange] = []
        self.write_paused = False
        self.flush_soon = False  # a write of what h2 framed is scheduled
        self.preface_done = False
        self.draining = False  # GOAWAY sent: no new stream, close once the last one ends
        self.closed = False
        self.requests = 0  # streams the client opened (Http2Limits.max_requests)
        # Preface and idle timeouts; a header block's own; the client taking no bytes.
        self.deadline = Deadline(self.loop)
        self.block_deadline = Deadline(self.loop)
        self.send_deadline = Deadline(self.loop)

    def start(self) -> None:
        conn = self.h2
        conn.initiate_connection()
        extra = self.limits.connection_window_size - _DEFAULT_WINDOW
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self.flush()
        self.deadline.set(self.client.services.limits.header_timeout, self._preface_timed_out)

    # --- from the transport ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.held = True
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as error:
            # h2 queued a GOAWAY with the error's code (ENHANCE_YOUR_CALM for floods).
            self._fail(f"HTTP/2 protocol error: {error}")
            return
        now = self.loop.time()
        for event in events:
            if isinstance(event, DataReceived):
                self._data(event, now)
            elif isinstance(event, RequestReceived):
                self._request(event)
            elif isinstance(event, StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.request_ended()
            elif isinstance(event, WindowUpdated):
                self._window_opened(event.stream_id)
            elif isinstance(event, StreamReset):
                self._reset_by_client(event.stream_id, now)
            elif isinstance(event, TrailersReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.exchange.trailers = trailer_section(event.headers or ())
            elif isinstance(event, RemoteSettingsChanged):
                self._settings(event, now)
            elif isinstance(event, PingReceived):
                self._flood(self.flood.count_ping(now))
            elif isinstance(event, (PriorityUpdated, UnknownFrameReceived)):
                self._flood(self.flood.count_empty(now))
            elif isinstance(event, ConnectionTerminated):
                self.drain()
            if self.transport.is_closing():
                return  # a limit or protocol error ended the connection
        starting, self.starting = self.starting, []
        for exchange in starting:
            if not exchange.gone:
                exchange.begin()
        if self.frames.in_header_block != self.block_open:
            # The block's deadline runs from its first frame; later frames do not move it.
            self.block_open = not self.block_open
            if self.block_open:
                self.block_deadline.set(
                    self.client.services.limits.header_timeout, self._header_block_timed_out
                )
            else:
                self.block_deadline.clear()
        self.release()

    def eof_received(self) -> bool | None:
        return None  # the client is done sending: close (streams are cancelled)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.client.pause_reading()  # no more frames to acknowledge until it reads
        self.send_deadline.set(self.client.services.limits.send_timeout, self._send_timed_out)
        for stream in self.streams.values():
            stream.backpressure()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.send_deadline.clear()
        self.client.resume_reading()
        for stream in list(self.streams.values()):
            stream.backpressure()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for deadline in (self.deadline, self.block_deadline, self.send_deadline):
            deadline.close()
        streams = list(self.streams.values())
        self.streams.clear()
        self.blocked.clear()
        for stream in streams:
            stream.gone()
        self.client.connection_lost(exc)

    # --- events ---------------------------------------------------------------------------------

    def _request(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        if self.draining:
            self._reset(stream_id, ErrorCodes.REFUSED_STREAM)  # after GOAWAY: retry elsewhere
            return
        stream = self.streams[stream_id] = Http2Stream(self, stream_id)
        if len(self.streams) == 1:
            self.client.services.admission.busy(self.client)
            self.deadline.clear()
        self.requests += 1
        if self.requests >= self.limits.max_requests:
            self.drain()  # this one is served; the client opens a new connection for more
        snapshot, endpoint = self.client.listener.state
        exchange = stream.exchange = Http2Exchange(stream, snapshot, endpoint)
        end_stream = event.stream_ended is not None
        decided = stream_request(event.headers or (), end_stream=end_stream)
        if isinstance(decided, Reject):
            exchange.refused = decided
        else:
            exchange.head, exchange.framing = decided
        if end_stream:
            stream.request_ended()
        self.starting.append(exchange)

    def _data(self, event: DataReceived, now: float) -> None:
        length = event.flow_controlled_length or 0
        stream = self.streams.get(event.stream_id)
        if not event.data and event.stream_ended is None:
            self._flood(self.flood.count_empty(now))
        if stream is None:
            self._acknowledge(length, event.stream_id)  # answered already: dropped
            return
        if event.data:
            stream.exchange.request_body(event.data)
        stream.received(length)

    def _window_opened(self, stream_id: int) -> None:
        if stream_id == 0:
            for blocked in list(self.blocked):
                blocked.push()
            return
        stream = self.streams.get(stream_id)
        if stream is not None and stream in self.blocked:
            stream.push()

    def _reset_by_client(self, stream_id: int, now: float) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        premature = not stream.exchange.finished or stream.unsent
        stream.reset_sent = True  # the stream is closed: nothing more is sent on it
        stream.gone()
        self.remove(stream, completed=not premature)
        if premature:
            self._flood(self.flood.count_reset(now))

    def _settings(self, event: RemoteSettingsChanged, now: float) -> None:
        if not self.preface_done:
            self.preface_done = True
            if not self.streams:
                self._arm_idle()
        self._flood(self.flood.count_settings(now))
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._window_opened(0)

    def _flood(self, reason: str | None) -> None:
        if reason is not None:
            self._fail(f"HTTP/2 flood: {reason}", ErrorCodes.ENHANCE_YOUR_CALM)

    # --- used by streams ------------------------------------------------------------------------

    def release(self) -> None:
        """The read is processed: frame what streams wrote meanwhile, write it all at once."""
        self.held = False
        dirty = self.dirty
        while dirty:
            dirty.pop().push()
        self.flush()

    def flush(self) -> None:
        """Write what h2 has framed, once per turn of the event loop: the responses of several
        streams that end in one turn go out as one TLS record and one send."""
        if self.held or self.closed or self.flush_soon:
            return
        self.flush_soon = True
        self.loop.call_soon(self._write_framed)

    def _write_framed(self) -> None:
        self.flush_soon = False
        if self.closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def remove(self, stream: Http2Stream, *, completed: bool) -> None:
        if self.streams.pop(stream.stream_id, None) is None:
            return
        self.blocked.discard(stream)
        stream.backend_deadline.close()
        stream.send_deadline.close()
        if completed:
            self.flood.count_completed(self.loop.time())
        if not self.streams:
            if self.draining:
                self._goodbye()
                return
            self.client.services.admission.idle(self.client)
            self._arm_idle()

    def _acknowledge(self, length: int, stream_id: int) -> None:
        if length and not self.closed:
            self.h2.acknowledge_received_data(length, stream_id)

    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        # Closed meanwhile (both sides ended it): nothing to reset.
        with contextlib.suppress(StreamClosedError, ProtocolError):
            self.h2.reset_stream(stream_id, code)

    # --- the connection's end -------------------------------------------------------------------

    def drain(self) -> None:
        """Graceful end (the listener closes, the worker needs the slot, the request limit,
        the client said GOAWAY, it was idle): no new stream is taken (REFUSED_STREAM, which
        clients retry); once the last one ends, GOAWAY NO_ERROR naming it, and close.

        The GOAWAY waits for the streams because h2-based clients (httpx among them) stop
        reading responses once they have one. It is written past h2, whose state machine
        sends nothing after its own."""
        if self.draining or self.closed:
            return
        self.draining = True
        if not self.streams:
            self._goodbye()

    def _goodbye(self) -> None:
        self._write_framed()
        goaway = GoAwayFrame(
            0, last_stream_id=self.h2.highest_inbound_stream_id, error_code=ErrorCodes.NO_ERROR
        )
        self.transport.write(goaway.serialize())
        self._close()

    def _fail(self, why: str, code: ErrorCodes | None = None) -> None:
        """The client broke the protocol or a limit: GOAWAY with the code, streams cancelled,
        connection closed."""
        if self.closed:
            return
        log.info("HTTP/2 connection from %s closed: %s", self.client.client_address.decode(), why)
        if code is not None:
            with contextlib.suppress(ProtocolError):  # h2 has closed the connection already
                self.h2.close_connection(code, last_stream_id=self.h2.highest_inbound_stream_id)
        self.held = False
        self.dirty.clear()
        self._write_framed()
        self._close()
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.gone()

    def _close(self) -> None:
        self.closed = True
        self.deadline.close()
        self.block_deadline.close()
        self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def _arm_idle(self) -> None:
        self.deadline.set(self.limits.idle_timeout, self.drain)

    def _preface_timed_out(self) -> None:
        # Once the preface is in, the idle deadline or a first stream replaced this one.
        self._fail("no HTTP/2 preface within the header timeout")

    def _header_block_timed_out(self) -> None:
        self._fail("a header block was not finished within the header timeout")

    def _send_timed_out(self) -> None:
        log.info(
            "HTTP/2 connection from %s closed: it took no byte for the send timeout",
            self.client.client_address.decode(),
        )
        for stream in self.streams.values():
            stream.exchange.error_info = "ERRORINFO_CLIENT_SEND_TIMED_OUT"
        self.abort()


class Http2Stream:
    """One stream as the client side of its exchange (exchange.ClientSide): the connection's
    facts, and the stream's own reading, writing and deadlines."""

    __slots__ = (
        "active",
        "backend_deadline",
        "client_address",
        "client_ip",
        "client_port",
        "client_verdict",
        "closing",
        "end_sent",
        "ended",
        "exchange",
        "head_fields",
        "loop",
        "pending",
        "read_paused",
        "request_done",
        "reset_sent",
        "send_deadline",
        "sent",
        "services",
        "session",
        "stream_id",
        "tls_certificate",
        "tls_cipher",
        "tls_version",
        "tunnel",
        "unacked",
        "write_paused",
    )

    exchange: Http2Exchange

    def __init__(self, session: Http2Session, stream_id: int) -> None:
        client = session.client
        self.session = session
        self.stream_id = stream_id
        self.services = client.services
        self.loop = client.loop
        self.client_ip = client.client_ip
        self.client_port = client.client_port
        self.client_address = client.client_address
        self.tls_version = client.tls_version
        self.tls_cipher = client.tls_cipher
        self.tls_certificate = client.tls_certificate
        self.client_verdict = client.client_verdict
        self.sent = 0
        self.write_paused = session.write_paused
        self.closing = False
        self.backend_deadline = Deadline(self.loop)
        self.send_deadline = Deadline(self.loop)
        self.active: Exchange | None = None  # HTTP/1.1's pipelining; a stream is its own
        self.tunnel: UpstreamConnection | None = None  # no upgrades on HTTP/2 (RFC 9113 §8.6)
        self.head_fields: list[Header] | None = None  # the response's HEADERS, not yet framed
        self.pending = bytearray()  # response body over the client's window
        self.ended = False  # the response is complete on our side
        self.end_sent = False  # END_STREAM is framed
        self.reset_sent = False
        self.request_done = False
        self.read_paused = False
        self.unacked = 0  # request body bytes received while paused, not yet acknowledged

    @property
    def unsent(self) -> bool:
        return bool(self.pending) or (self.ended and not self.end_sent)

    # --- the request ----------------------------------------------------------------------------

    def received(self, length: int) -> None:
        if self.read_paused:
            self.unacked += length
        else:
            self.session._acknowledge(length, self.stream_id)

    def request_ended(self) -> None:
        if self.request_done:
            return
        self.request_done = True
        self.exchange.request_complete()
        self._maybe_done()

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False
        unacked, self.unacked = self.unacked, 0
        if unacked:
            self.session._acknowledge(unacked, self.stream_id)
            self.session.flush()

    # --- the response ---------------------------------------------------------------------------

    def send_interim(self, fields: list[Header]) -> None:
        if self.reset_sent:
            return
        try:
            self.session.h2.send_headers(self.stream_id, fields)
        except (StreamClosedError, ProtocolError):
            self._cancel(ErrorCodes.CANCEL)  # as in push
            return
        self.session.flush()

    def send_head(self, fields: list[Header]) -> None:
        self.head_fields = fields
        self.sent += sum(len(name) + len(value) + 4 for name, value in fields)
        self._written()

    def write(self, data: bytes) -> None:
        """Response body bytes."""
        self.pending += data
        self.sent += len(data)
        self._written()

    def end(self) -> None:
        self.ended = True
        self._written()

    def _written(self) -> None:
        session = self.session
        if session.held:
            session.dirty.add(self)
        else:
            self.push()

    def hold_writes(self) -> None:
        self.session.held = True

    def flush_writes(self) -> None:
        self.session.release()

    def push(self) -> None:
        """Frame what the client's windows allow; the rest waits for WINDOW_UPDATE."""
        session = self.session
        if self.reset_sent or session.closed:
            return
        try:
            self._frame(session.h2)
        except (StreamClosedError, ProtocolError):
            # The client ended the stream or the connection (h2 sends nothing after a GOAWAY
            # it received) in the same moment: the rest of this response has nowhere to go.
            self._cancel(ErrorCodes.CANCEL)
            return
        session.flush()
        blocked = bool(self.pending)
        if blocked != (self in session.blocked):
            if blocked:
                session.blocked.add(self)
                self.send_deadline.set(self.services.limits.send_timeout, self._send_timed_out)
            else:
                session.blocked.discard(self)
                self.send_deadline.clear()
            self.backpressure()
        self._maybe_done()

    def _frame(self, conn: H2Connection) -> None:
        stream_id = self.stream_id
        fields = self.head_fields
        if fields is not None:
            self.head_fields = None
            last = self.ended and not self.pending
            conn.send_headers(stream_id, fields, end_stream=last)
            self.end_sent = last
        pending = self.pending
        while pending:
            size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if size <= 0:
                break
            piece = bytes(pending[:size])
            del pending[:size]
            last = self.ended and not pending
            conn.send_data(stream_id, piece, end_stream=last)
            self.end_sent = last
        if self.ended and not pending and not self.end_sent:
            conn.end_stream(stream_id)
            self.end_sent = True

    def backpressure(self) -> None:
        """The backend is read only while the client takes what it sends."""
        paused = self.write_paused = self.session.write_paused or self in self.session.blocked
        upstream = self.exchange.upstream
        if upstream is not None:
            if paused:
                upstream.pause_reading()
            else:
                upstream.resume_reading()

    def _maybe_done(self) -> None:
        if not (self.end_sent and self.exchange.finished):
            return
        if not self.request_done:
            # Answered before the client finished its body (RFC 9113 §8.1): stop it, no error.
            self.session._reset(self.stream_id, ErrorCodes.NO_ERROR)
            self.reset_sent = True
            self.session.flush()
        self.session.remove(self, completed=True)

    # --- exchange.ClientSide --------------------------------------------------------------------

    def exchange_done(self, exchange: Exchange, *, close: bool) -> None:
        # `close` is HTTP/1.1's (the connection ends after this response); a stream just ends.
        self._maybe_done()

    def start_tunnel(self, upstream: UpstreamConnection, early: bytes) -> None:
        raise AssertionError("an HTTP/2 stream is never upgraded (its framing is never websocket)")

    def close(self) -> None:
        self._cancel(ErrorCodes.CANCEL)

    def abort(self) -> None:
        self._cancel(ErrorCodes.INTERNAL_ERROR)

    def _cancel(self, code: ErrorCodes) -> None:
        """The response cannot be completed: reset this stream alone."""
        if not self.reset_sent and not self.end_sent:
            self.session._reset(self.stream_id, code)
        self.reset_sent = True
        self.pending.clear()
        self.gone()
        self.session.flush()
        self.session.remove(self, completed=False)

    def gone(self) -> None:
        self.closing = True
        self.backend_deadline.close()
        self.send_deadline.close()
        self.exchange.client_gone()

    def _send_timed_out(self) -> None:
        if not self.exchange.finished:
            self.exchange.error_info = "ERRORINFO_CLIENT_SEND_TIMED_OUT"
        self._cancel(ErrorCodes.CANCEL)


class Http2Exchange(Exchange):
    """An exchange whose client is an HTTP/2 stream: the same decisions and backend I/O, with
    the response framed as HEADERS and DATA instead of HTTP/1.1 bytes."""

    __slots__ = ("stream", "trailers")

    def __init__(self, stream: Http2Stream, snapshot: Snapshot, endpoint: Endpoint) -> None:
        super().__init__(stream, snapshot, endpoint)
        self.stream = stream
        self.trailers = b""  # the request's trailers, for the chunked body's end

    def _last_chunk(self) -> bytes:
        return b"0\r\n" + self.trailers + b"\r\n" if self.trailers else LAST_CHUNK

    def _send_interim(self, status: int, headers: list[Header]) -> None:
        self.stream.send_interim(interim_fields(status, headers))

    def _send_head(self, status: int, reason: bytes, headers: list[Header]) -> None:
        fields, _no_body = response_fields(
            status, headers, set_cookie=self.set_cookie, method=self.head.method
        )
        self.stream.send_head(fields)

    def _send_body(self, data: bytes) -> None:
        self.stream.write(data)

    def _send_end(self) -> None:
        self.stream.end()

    def _send_redirect(self, status: int, location: bytes) -> None:
        self.stream.send_head(redirect_fields(status, location))
        self.stream.end()

    def _send_error(self, status: int, page: bytes | None, *, close: bool) -> None:
        body = error_page(status) if page is None else page
        self.stream.send_head(error_fields(status, len(body)))
        if self.head.method != b"HEAD":
            self.stream.write(body)
        self.stream.end()
