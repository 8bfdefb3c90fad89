"""A client's request head, and the checks it passes before anything reaches a backend.

`framing` runs when the head is complete (what the body looks like); `admit` when the request
becomes the connection's active one (Host, method, target). Each returns a `Reject` that says
what the client is answered, or what the exchange goes on with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appgw.compile.matching import normalize_host
from appgw.core.http import Header, header_value

# The versions llhttp parses that the gateway serves; HTTP/2 has its own listener protocol.
SUPPORTED_VERSIONS = frozenset({"1.0", "1.1"})
REFUSED_METHODS = {
    b"TRACE": "ERRORINFO_INVALID_METHOD_TRACE",  # Azure refuses TRACE (cross-site tracing)
    b"CONNECT": "ERRORINFO_INVALID_METHOD",  # a gateway, not a forward proxy
}


@dataclass(slots=True)
class RequestHead:
    """Filled by the parser's callbacks; read-only once the head is complete."""

    method: bytes = b""
    target: bytes = b""
    http_version: str = "1.1"
    keep_alive: bool = True
    headers: list[Header] = field(default_factory=list)
    header_bytes: int = 0  # names, values and their framing as received


@dataclass(frozen=True, slots=True)
class Reject:
    """The gateway answers itself with `status`; `close`: the connection ends after it."""

    status: int
    error_info: str  # Azure's access-log code
    close: bool = True


@dataclass(frozen=True, slots=True)
class Framing:
    chunked: bool  # the body is chunked (and is sent on chunked)
    content_length: bytes | None  # as received, when not chunked
    has_body: bool
    websocket: bool  # a WebSocket upgrade: the one protocol switch offered (as Azure's)


NO_BODY = Framing(chunked=False, content_length=None, has_body=False, websocket=False)


def framing(head: RequestHead, *, upgrade: bool) -> Framing | Reject:
    """What follows the head. `upgrade`: llhttp saw a protocol switch request."""
    if head.http_version not in SUPPORTED_VERSIONS:
        return Reject(400, "ERRORINFO_INVALID_VERSION")
    chunked = _has_chunked(head.headers)
    length = header_value(head.headers, b"content-length")
    if upgrade and chunked:
        # llhttp stops parsing at an upgrade request's head; a chunked body after it cannot be
        # told from the next request safely, so refuse (no real upgrade has one).
        return Reject(400, "ERRORINFO_INVALID_REQUEST")
    if not chunked and length is None and not upgrade:
        return NO_BODY  # most requests: no object to make
    wanted = header_value(head.headers, b"upgrade")
    return Framing(
        chunked=chunked,
        content_length=None if chunked or length is None else length.strip(),
        has_body=chunked or (length is not None and length.strip() != b"0"),
        websocket=upgrade and wanted is not None and wanted.strip().lower() == b"websocket",
    )


def admit(head: RequestHead) -> str | Reject:
    """The request's normalized host ("" for an HTTP/1.0 request without one), or why not."""
    hosts = [value for name, value in head.headers if name.lower() == b"host"]
    if not hosts:
        if head.http_version != "1.0":
            return Reject(400, "ERRORINFO_HTTP_NO_HOST_HEADER")
        host = ""
    else:
        normalized = normalize_host(hosts[0]) if hosts[0] else ""
        if normalized is None or len(hosts) > 1:
            return Reject(400, "ERRORINFO_INVALID_HOST")
        host = normalized
    refused = REFUSED_METHODS.get(head.method)
    if refused is not None:
        return Reject(400, refused)
    if not head.target.startswith(b"/") and head.target != b"*":
        return Reject(400, "ERRORINFO_REQUEST_URI_INVALID")
    return host


def _has_chunked(headers: list[Header]) -> bool:
    for name, value in headers:
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False
