"""A client's request head, and the checks it passes before anything reaches a backend.

`framing` runs when the head is complete (what the body looks like); `admit` when the request
becomes the connection's active one (Host, method, target). Each returns a `Reject` that says
what the client is answered, or what the exchange goes on with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appgw.compile.matching import normalize_host
from appgw.core.http import Header, header_value

# The versions llhttp parses that the gateway serves; HTTP/2 has its own listener protocol.
SUPPORTED_VERSIONS = frozenset({"1.0", "1.1"})
_OWS = b" \t"  # RFC 9110 optional whitespace: nothing else is trimmed (bytes.strip() takes \x0b)
# A Content-Length of up to 19 digits: an integer that fits 63 bits, whatever the parser.
_DIGITS = re.compile(rb"[0-9]{1,19}")
_ABSOLUTE_FORM = re.compile(rb"[hH][tT][tT][pP][sS]?://(?P<authority>[^/?#]+)(?P<rest>[/?].*)?")
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
    """What follows the head (RFC 9112 §6), or why no body length can be trusted.
    `upgrade`: llhttp saw a protocol switch request."""
    if head.http_version not in SUPPORTED_VERSIONS:
        return Reject(400, "ERRORINFO_INVALID_VERSION")
    codings: list[bytes] = []
    lengths: list[bytes] = []
    for name, value in head.headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            codings += (coding.strip(_OWS).lower() for coding in value.split(b","))
        elif lowered == b"content-length":
            lengths.append(value.strip(_OWS))
    if not codings and not lengths and not upgrade:
        return NO_BODY  # most requests: no object to make
    chunked = bool(codings)
    if codings:
        refused = _transfer_codings(codings, head.http_version, bool(lengths))
        if refused is not None:
            return refused
    elif lengths and (len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0])):
        # One length, digits only: "+5", "0x5", "5, 5" and a second line each have a reader
        # that counts otherwise (RFC 9112 §6.3 item 5: 400).
        return Reject(400, "ERRORINFO_INVALID_CONTENT_LENGTH")
    if upgrade and chunked:
        # llhttp stops parsing at an upgrade request's head; a chunked body after it cannot be
        # told from the next request safely, so refuse (no real upgrade has one).
        return Reject(400, "ERRORINFO_INVALID_REQUEST")
    length = None if chunked or not lengths else lengths[0]
    wanted = header_value(head.headers, b"upgrade")
    return Framing(
        chunked=chunked,
        content_length=length,
        has_body=chunked or (length is not None and length.lstrip(b"0") != b""),
        websocket=upgrade and wanted is not None and wanted.strip().lower() == b"websocket",
    )


def _transfer_codings(codings: list[bytes], version: str, length: bool) -> Reject | None:
    if version == "1.0":
        # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        return Reject(400, "ERRORINFO_INVALID_TRANSFER_ENCODING")
    if length:
        return Reject(400, "ERRORINFO_INVALID_TRANSFER_ENCODING")  # §6.3 item 3: smuggling
    if codings[-1] != b"chunked" or codings.count(b"chunked") != 1 or b"" in codings:
        # §6.3 item 4: chunked not final (or twice, or an empty element): no reliable length.
        return Reject(400, "ERRORINFO_INVALID_TRANSFER_ENCODING")
    if len(codings) > 1:
        # §6.1: a coding the gateway does not decode (gzip, ...) before chunked: 501, never
        # forwarded with the coding silently dropped.
        return Reject(501, "ERRORINFO_UNSUPPORTED_TRANSFER_ENCODING")
    return None


def admit(head: RequestHead) -> str | Reject:
    """The request's normalized host ("" for an HTTP/1.0 request without one), or why not.
    An absolute-form target (`GET http://host/path`) must name the Host's host; it is then
    served as its origin form."""
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
    target = head.target
    if target.startswith(b"/"):
        return host
    if target == b"*":
        # The asterisk form names the server, not a resource: OPTIONS only (RFC 9112 §3.2.4).
        return host if head.method == b"OPTIONS" else Reject(400, "ERRORINFO_REQUEST_URI_INVALID")
    absolute = _ABSOLUTE_FORM.fullmatch(target)
    if absolute is None:
        return Reject(400, "ERRORINFO_REQUEST_URI_INVALID")
    if normalize_host(absolute["authority"]) != host:
        # RFC 9112 §3.2.2 would route by the target's host; one request naming two hosts is
        # refused instead, so no rule or certificate check can be bypassed through either.
        return Reject(400, "ERRORINFO_INVALID_HOST")
    rest = absolute["rest"] or b""
    head.target = rest if rest.startswith(b"/") else b"/" + rest
    return host
