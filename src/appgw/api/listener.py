"""The admin listener's HTTP/1.1 protocol: uvicorn's httptools protocol with bounded heads.

httptools keeps a header name or value in memory until it ends, and uvicorn sets no limit (its
h11_max_incomplete_event_size is only for h11): a header or URL that never ends would be
buffered without bound, by anyone, before authentication. Here the bytes of a request head are
counted as they arrive; past the limit the client gets 414 (URL) or 431 (head) and the
connection is closed without reading further. A head must also be complete within the
client header timeout from its first byte (408), so a client sending a byte now and then
cannot hold a connection: uvicorn's keep-alive timer stops at the first byte of a request.
"""

from __future__ import annotations

import asyncio
import json

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from appgw.control.service import ServiceError

# The data plane's limits are Azure's 32 KB URL and 32 KB of headers. The admin API's own URLs
# are ARM paths of a few hundred bytes plus a $filter or $skiptoken, and its clients send a
# handful of headers: 16 KiB of URL and 32 KiB of head in all are far above both.
MAX_URL_BYTES = 16 * 1024
MAX_HEAD_BYTES = 32 * 1024

_REFUSALS = {
    414: (
        "URI Too Long",
        "RequestUriTooLong",
        f"The request URL exceeds {MAX_URL_BYTES} bytes.",
    ),
    408: (
        "Request Timeout",
        "RequestTimeout",
        "The request head was not complete in time.",
    ),
    431: (
        "Request Header Fields Too Large",
        "RequestHeaderFieldsTooLarge",
        f"The request line and headers exceed {MAX_HEAD_BYTES} bytes.",
    ),
}


class _UrlTooLong(Exception):
    """Raised from the parser's URL callback: llhttp stops at once."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes of each request head from its first byte. A head that begins in the
    same read as the previous request's body is counted from the next read, so what is held
    is bounded by the limit plus one read of the event loop (256 KiB), never more."""

    head_timeout: float  # seconds from a head's first byte: serve's, set by bounded_protocol
    _head_bytes = 0
    _in_head = True
    _head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if data and self._in_head and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)
        while data:
            if self._in_head:
                room = MAX_HEAD_BYTES - self._head_bytes
                if room <= 0:
                    self._refuse(431)
                    return
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                piece, data = data, b""
            if not self._feed(piece):
                return
        if self._in_head and self._head_bytes and self._head_timer is None:
            # The next head began in the same read as the end of a request.
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _feed(self, piece: bytes) -> bool:
        """uvicorn's handling of one piece, plus the URL limit; False once the connection is
        answered and closing (or upgraded)."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _UrlTooLong):
                self._refuse(414)
                return False
            self._invalid()
            return False
        except httptools.HttpParserError:
            self._invalid()
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return not self.transport.is_closing()

    def _invalid(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise _UrlTooLong

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _refuse(self, status: int) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being sent: that response ends the
            # connection, and nothing more is read meanwhile.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        reason, code, message = _REFUSALS[status]
        body = json.dumps(ServiceError(status, code, message).to_json()).encode()
        self.transport.write(
            b"".join(
                [
                    f"HTTP/1.1 {status} {reason}\r\n".encode(),
                    b"content-type: application/json\r\n",
                    f"content-length: {len(body)}\r\n".encode(),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()


def bounded_protocol(head_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn (which takes a class) with serve's client header
    timeout, the same one the data plane's listeners use."""
    return type(
        "BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"head_timeout": head_timeout}
    )
