"""The request head the backend receives: re-serialised from parsed parts, never relayed.

Hop-by-hop and gateway-set headers of the client are dropped, Azure's X-Forwarded-* and
X-Original-* headers added, and the body framing restated (Content-Length or chunked). Built in
one list of pieces joined once: it runs for every request.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

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
    edits: Mapping[bytes, tuple[bytes, bytes | None]] | None = None,
) -> bytes:
    """`path` (normalized) and `query` are what was routed (or rewritten); X-Original-URL keeps
    the target as received. `client`: the client's "ip:port" (IPv6 in brackets), as
    X-Forwarded-For appends it. `edits`: a rewrite rule set's header edits (lower-case name ->
    (name, value or None to delete)); they win over the client's and the gateway's own."""
    path = backend_path(path, path_override, matched_prefix)
    forwarded_for = client
    parts = [head.method, b" ", path, b"?" if query else b"", query, b" HTTP/1.1\r\n"]
    if edits is not None and b"host" in edits:
        host_header = edits[b"host"][1] or host_header  # validation refuses deleting Host
    parts += (b"Host: ", host_header, b"\r\n")
    for name, value in forwardable_request_headers(head.headers):
        lowered = name.lower()
        if lowered == b"x-forwarded-for":
            forwarded_for = value + b", " + forwarded_for
        elif edits is None or lowered not in edits:
            parts += (name, b": ", value, b"\r\n")
    original_host = header_value(head.headers, b"host") or b""
    if edits is None:
        parts += (
            b"X-Forwarded-For: ",
            forwarded_for,
            _forwarded_port_lines(https, port),
            b"X-Original-Host: ",
            original_host,
            b"\r\nX-Original-URL: ",
            head.target,
            b"\r\nX-AppGW-Trace-Id: ",
            trace_id.encode(),
            b"\r\n",
        )
    else:
        gateway_headers = (
            (b"X-Forwarded-For", forwarded_for),
            (b"X-Forwarded-Proto", b"https" if https else b"http"),
            (b"X-Forwarded-Port", b"%d" % port),
            (b"X-Original-Host", original_host),
            (b"X-Original-URL", head.target),
            (b"X-AppGW-Trace-Id", trace_id.encode()),
        )
        for name, value in gateway_headers:
            if name.lower() not in edits:
                parts += (name, b": ", value, b"\r\n")
        for lowered, (name, edited) in edits.items():
            if edited is not None and lowered != b"host":
                parts += (name, b": ", edited, b"\r\n")
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
