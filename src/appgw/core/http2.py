"""HTTP/2 to clients, the decisions without I/O: a stream's request as the head every request
becomes, the response's header list, and the flood guard that tells a busy client from an
attacker.

The frames and HPACK are the `h2` library's; what a stream asks for goes through the same
`admit`, routing, rewrites and backend head as an HTTP/1.1 request (dataplane/http2.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appgw.core.http import (
    HOP_BY_HOP,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_URL_BYTES,
    Header,
    connection_tokens,
)
from appgw.core.limits import Http2Limits
from appgw.core.request import NO_BODY, Framing, Reject, RequestHead

# The version the access log and the server variables report for a stream.
HTTP2_VERSION = "2.0"
# Azure's HTTP/2 header field limit (name and value); a larger one is a 431 on its stream.
MAX_FIELD_BYTES = 8 * 1024
# What an HTTP/1.1 head counts per field on top of name and value (": " and CRLF): the same
# measure for both versions, so one limit means one thing.
_FIELD_OVERHEAD = 4


def stream_request(
    fields: Sequence[Header], *, end_stream: bool
) -> tuple[RequestHead, Framing] | Reject:
    """A stream's header list (validated by h2: pseudo-headers first, lower-case names, no
    connection-specific fields, Host matching :authority, cookies joined) as a request head.

    :authority becomes the Host header when the client sent none (RFC 9113 §8.3.1), so
    routing, X-Original-Host and the backend's Host see one name either way. The head's
    limits are HTTP/1.1's (32 KiB of target, 32 KiB and 200 fields of headers) and Azure's
    8 KB per HTTP/2 header field.
    """
    method = target = authority = scheme = b""
    headers: list[Header] = []
    size = 0
    length: bytes | None = None
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value
            continue
        headers.append((name, value))
        field = len(name) + len(value)
        size += field + _FIELD_OVERHEAD
        if field > MAX_FIELD_BYTES:
            return Reject(431, "ERRORINFO_INVALID_REQUEST", close=False)
        if name == b"content-length":
            if length is not None and value != length:
                return Reject(400, "ERRORINFO_INVALID_CONTENT_LENGTH", close=False)
            length = value
    if len(target) > MAX_URL_BYTES:
        return Reject(414, "ERRORINFO_REQUEST_URI_INVALID", close=False)
    if size > MAX_HEADER_BYTES or len(headers) > MAX_HEADER_COUNT:
        return Reject(431, "ERRORINFO_INVALID_REQUEST", close=False)
    if scheme != b"https":
        # h2 is offered on TLS listeners only; an http:// stream there names another origin.
        return Reject(400, "ERRORINFO_INVALID_REQUEST", close=False)
    if authority and not any(name == b"host" for name, _ in headers):
        headers.insert(0, (b"host", authority))
        size += 4 + len(authority) + _FIELD_OVERHEAD
    head = RequestHead(
        method=method,
        target=target,
        http_version=HTTP2_VERSION,
        keep_alive=True,
        headers=headers,
        header_bytes=size,
    )
    if end_stream:
        return head, NO_BODY
    if length is not None and not length.isdigit():
        return Reject(400, "ERRORINFO_INVALID_CONTENT_LENGTH", close=False)
    # A body of unknown length goes to the HTTP/1.1 backend chunked (h2 frames carry no length).
    return head, Framing(
        chunked=length is None, content_length=length, has_body=True, websocket=False
    )


def trailer_section(fields: Sequence[Header]) -> bytes:
    """A stream's trailers as the trailer section of a chunked HTTP/1.1 body: pseudo-headers,
    hop-by-hop fields and those that frame or route a message are not forwarded (RFC 9110
    §6.5.1)."""
    parts: list[bytes] = []
    for name, value in fields:
        if name[:1] == b":" or name in HOP_BY_HOP or name in _NOT_TRAILERS:
            continue
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts)


_NOT_TRAILERS = frozenset({b"content-length", b"host", b"content-type", b"authorization"})


def response_fields(
    status: int,
    headers: Sequence[Header],
    *,
    set_cookie: Sequence[Header],
    method: bytes,
) -> tuple[list[Header], bool]:
    """The client's HEADERS for a backend's response: :status, the end-to-end headers with
    lower-case names (RFC 9113 §8.2.2), the session-affinity cookie, and Content-Length when
    the backend stated one and did not chunk. Second: the response has no body."""
    listed = connection_tokens(headers)
    fields: list[Header] = [(b":status", b"%d" % status)]
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            if length is None:
                length = value
        elif lower in HOP_BY_HOP:
            chunked = chunked or (lower == b"transfer-encoding" and b"chunked" in value.lower())
        elif lower not in listed:
            fields.append((lower, value))
    fields += ((name.lower(), value) for name, value in set_cookie)
    no_body = method == b"HEAD" or status in (204, 304)
    if length is not None and not chunked and status != 204 and length.isdigit():
        fields.append((b"content-length", length))
    return fields, no_body


def interim_fields(status: int, headers: Sequence[Header]) -> list[Header]:
    """A 1xx (100 Continue, 103 Early Hints) as an informational HEADERS frame."""
    fields, _no_body = response_fields(status, headers, set_cookie=(), method=b"")
    return [(name, value) for name, value in fields if name != b"content-length"]


def error_fields(status: int, content_length: int) -> list[Header]:
    """The gateway's own error page's HEADERS."""
    return [
        (b":status", b"%d" % status),
        (b"content-type", b"text/html"),
        (b"content-length", b"%d" % content_length),
    ]


def redirect_fields(status: int, location: bytes) -> list[Header]:
    return [(b":status", b"%d" % status), (b"location", location), (b"content-length", b"0")]


@dataclass(slots=True)
class _Window:
    """Counts of one flood window."""

    started: float = 0.0
    resets: int = 0
    completed: int = 0
    settings: int = 0
    pings: int = 0
    empty: int = 0


class FloodGuard:
    """Per connection: the frames that cost the gateway work and give a client nothing,
    counted per window (Http2Limits.flood_window). Each `count_*` returns why the connection
    should be sent GOAWAY (ENHANCE_YOUR_CALM), or None.

    Resets follow Rapid Reset (CVE-2023-44487): a client that cancels more streams than a
    window allows *and* more than it lets complete is attacking; one that cancels many but
    completes more (a browser leaving pages) is not.
    """

    __slots__ = ("_limits", "_window")

    def __init__(self, limits: Http2Limits) -> None:
        self._limits = limits
        self._window = _Window()

    def _current(self, now: float) -> _Window:
        window = self._window
        if now - window.started >= self._limits.flood_window:
            window = self._window = _Window(started=now)
        return window

    def count_reset(self, now: float) -> str | None:
        window = self._current(now)
        window.resets += 1
        if window.resets > self._limits.max_resets and window.resets > window.completed:
            return (
                f"{window.resets} streams reset by the client within "
                f"{self._limits.flood_window:g} s, more than it completed ({window.completed})"
            )
        return None

    def count_completed(self, now: float) -> None:
        self._current(now).completed += 1

    def count_settings(self, now: float) -> str | None:
        window = self._current(now)
        window.settings += 1
        if window.settings > self._limits.max_settings:
            return f"more than {self._limits.max_settings} SETTINGS frames within the window"
        return None

    def count_ping(self, now: float) -> str | None:
        window = self._current(now)
        window.pings += 1
        if window.pings > self._limits.max_pings:
            return f"more than {self._limits.max_pings} PINGs within the window"
        return None

    def count_empty(self, now: float) -> str | None:
        """A DATA frame without payload or END_STREAM (CVE-2019-9518), or a frame that does
        nothing else (PRIORITY, an unknown type)."""
        window = self._current(now)
        window.empty += 1
        if window.empty > self._limits.max_empty_frames:
            return f"more than {self._limits.max_empty_frames} empty frames within the window"
        return None
