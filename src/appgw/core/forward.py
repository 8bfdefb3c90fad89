"""The request head the backend receives: re-serialised from parsed parts, never relayed.

Hop-by-hop and gateway-set headers of the client are dropped, Azure's X-Forwarded-* and
X-Original-* headers added, and the body framing restated (Content-Length or chunked). Built in
one list of pieces joined once: it runs for every request.
"""

from __future__ import annotations

import functools

from appgw.core.http import backend_path, forwardable_request_headers, header_value
from appgw.core.request import Framing, RequestHead


def backend_request_head(
    head: RequestHead,
    framing: Framing,
    *,
    path: bytes,
    query: bytes,
    host_header: bytes,
    path_override: str | None,
    matched_prefix: str,
    client: bytes,
    https: bool,
    port: int,
    trace_id: str,
) -> bytes:
    """`path` (normalized) and `query` are what was routed; X-Original-URL keeps the target as
    received. `client`: the client's "ip:port" (IPv6 in brackets), as X-Forwarded-For appends
    it."""
    path = backend_path(path, path_override, matched_prefix)
    forwarded_for = client
    parts = [head.method, b" ", path, b"?" if query else b"", query, b" HTTP/1.1\r\n"]
    parts += (b"Host: ", host_header, b"\r\n")
    for name, value in forwardable_request_headers(head.headers):
        if name.lower() == b"x-forwarded-for":
            forwarded_for = value + b", " + forwarded_for
        else:
            parts += (name, b": ", value, b"\r\n")
    parts += (
        b"X-Forwarded-For: ",
        forwarded_for,
        _forwarded_port_lines(https, port),
        b"X-Original-Host: ",
        header_value(head.headers, b"host") or b"",
        b"\r\nX-Original-URL: ",
        head.target,
        b"\r\nX-AppGW-Trace-Id: ",
        trace_id.encode(),
        b"\r\n",
    )
    if framing.websocket:
        upgrade = header_value(head.headers, b"upgrade") or b"websocket"
        parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade, b"\r\n")
    elif framing.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif framing.content_length is not None:
        parts += (b"Content-Length: ", framing.content_length, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def client_address(ip: str, port: int) -> bytes:
    """X-Forwarded-For's form of a client: ip:port, an IPv6 address in brackets."""
    return (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}").encode()


@functools.lru_cache(maxsize=256)
def _forwarded_port_lines(https: bool, port: int) -> bytes:
    """The end of the X-Forwarded-For line and the two lines fixed per listener."""
    scheme = b"https" if https else b"http"
    return b"\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (scheme, port)
