"""The response head the client receives, and how its body is framed.

The backend's end-to-end headers are kept, its framing is not: the gateway states its own
(Content-Length when known, chunked for HTTP/1.1, else the end of the connection), as the
client's request allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appgw.core.http import (
    Header,
    forwardable_response_head,
    header_value,
    status_line as _status_line,
)


@dataclass(frozen=True, slots=True)
class ResponseFraming:
    head: bytes
    chunked: bool  # the body is re-chunked towards the client
    close: bool  # the connection ends with this response


def interim_head(
    status: int, reason: bytes, headers: Sequence[Header], http_version: str
) -> bytes | None:
    """A 1xx other than 101 for the client, with its reason and end-to-end headers (103 Early
    Hints carries Link); None: an HTTP/1.0 client gets none (RFC 9110 §15.2)."""
    if http_version == "1.0":
        return None
    parts, _length, _chunked = forwardable_response_head(_status_line(status, reason), headers)
    parts.append(b"\r\n")
    return b"".join(parts)


def response_head(
    status: int,
    reason: bytes,
    headers: Sequence[Header],
    *,
    set_cookie: Sequence[Header],
    method: bytes,
    http_version: str,
    keep_alive: bool,
    close_after: bool,
) -> ResponseFraming:
    """`close_after`: the connection ends after this response whatever the headers say
    (the gateway is closing it, or the request was an upgrade the backend declined)."""
    parts, length, chunked = forwardable_response_head(_status_line(status, reason), headers)
    for name, value in set_cookie:
        parts += (name, b": ", value, b"\r\n")
    rechunk = close = False
    if method == b"HEAD" or status in (204, 304):
        if length is not None and status != 204:
            parts += (b"Content-Length: ", length, b"\r\n")
    elif length is not None and not chunked:
        parts += (b"Content-Length: ", length, b"\r\n")
    elif http_version == "1.1":
        rechunk = True
        parts.append(b"Transfer-Encoding: chunked\r\n")
    else:
        close = True  # an HTTP/1.0 client: the body ends with the connection
    if not keep_alive or close or close_after:
        close = True
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return ResponseFraming(b"".join(parts), rechunk, close)


def upgrade_head(
    status: int, reason: bytes, headers: Sequence[Header], set_cookie: Sequence[Header]
) -> bytes:
    """A 101 that switches the connection to the protocol the backend accepted."""
    parts, _length, _chunked = forwardable_response_head(_status_line(status, reason), headers)
    for name, value in set_cookie:
        parts += (name, b": ", value, b"\r\n")
    upgrade_to = header_value(headers, b"upgrade") or b"websocket"
    parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade_to, b"\r\n\r\n")
    return b"".join(parts)
